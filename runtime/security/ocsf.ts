import type { SecurityEvent, Severity } from '../events.ts';

/**
 * Maps Director's security events onto OCSF (Open Cybersecurity Schema Framework) classes, so
 * an export can be loaded into a SIEM without a custom parser:
 * - 4001 Network Activity: `egress_*`, `ingress_*`, `dns_*`
 * - 3002 Authentication: `auth_*`, `login_*`, `scope_denied`
 * - 1007 Process Activity: `exec_denied`, `oom_killed`, `timeout_killed`, `pids_limit_reached`
 * - 2004 Detection Finding: `security_alert*`, `policy_violation`, `policy_tampered`, `policy_restored`,
 *   `agent_tampered`
 * - 0 Base Event: everything else (lifecycle, configuration changes)
 * `type_uid` = class_uid × 100 + activity_id; `severity_id` 1 (informational) … 5 (critical).
 */
export const OCSF_VERSION = '1.3.0';
/** Version of the export line format (`schemaVersion` on every NDJSON line). */
export const EXPORT_SCHEMA_VERSION = '1.0';

export const SEVERITY_ID: Record<Severity, number> = { info: 1, low: 2, medium: 3, high: 4, critical: 5 };
const SEVERITY_NAME: Record<Severity, string> = { info: 'Informational', low: 'Low', medium: 'Medium', high: 'High', critical: 'Critical' };

interface ClassInfo {
  class_uid: number;
  class_name: string;
  category_uid: number;
  category_name: string;
}

const NETWORK: ClassInfo = { class_uid: 4001, class_name: 'Network Activity', category_uid: 4, category_name: 'Network Activity' };
const AUTH: ClassInfo = { class_uid: 3002, class_name: 'Authentication', category_uid: 3, category_name: 'Identity & Access Management' };
const PROCESS: ClassInfo = { class_uid: 1007, class_name: 'Process Activity', category_uid: 1, category_name: 'System Activity' };
const FINDING: ClassInfo = { class_uid: 2004, class_name: 'Detection Finding', category_uid: 2, category_name: 'Findings' };
const BASE: ClassInfo = { class_uid: 0, class_name: 'Base Event', category_uid: 0, category_name: 'Uncategorized' };

export function ocsfClassOf(type: string): ClassInfo {
  if (/^(egress|ingress|dns)_/.test(type)) return NETWORK;
  if (/^(auth|login)_/.test(type) || type === 'scope_denied') return AUTH;
  if (['exec_denied', 'oom_killed', 'timeout_killed', 'pids_limit_reached'].includes(type)) return PROCESS;
  if (type.startsWith('security_alert') || ['policy_violation', 'policy_tampered', 'policy_restored', 'agent_tampered'].includes(type))
    return FINDING;
  return BASE;
}

/** activity_id and its name per class (OCSF 1.3 enumerations). */
function activityOf(cls: ClassInfo, type: string): { id: number; name: string } {
  switch (cls.class_uid) {
    case 4001:
      return type.endsWith('_denied') ? { id: 5, name: 'Refuse' } : { id: 6, name: 'Traffic' };
    case 3002:
      return { id: 1, name: 'Logon' };
    case 1007:
      return type === 'exec_denied' || type === 'pids_limit_reached' ? { id: 1, name: 'Launch' } : { id: 2, name: 'Terminate' };
    case 2004:
      return type.endsWith('_cleared') || type === 'policy_restored' ? { id: 3, name: 'Close' } : { id: 1, name: 'Create' };
    default:
      return { id: 99, name: 'Other' };
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** The OCSF rendering of one event (class-specific objects where the event has the data). */
export function toOcsf(e: SecurityEvent): Record<string, unknown> {
  const cls = ocsfClassOf(e.type);
  const act = activityOf(cls, e.type);
  const d = e.details;
  const out: Record<string, unknown> = {
    ...cls,
    activity_id: act.id,
    activity_name: act.name,
    type_uid: cls.class_uid * 100 + act.id,
    severity_id: SEVERITY_ID[e.severity],
    severity: SEVERITY_NAME[e.severity],
    time: Date.parse(e.timestamp),
    message: e.type,
    metadata: {
      version: OCSF_VERSION,
      uid: e.id,
      sequence: e.seq,
      product: { name: 'Director', vendor_name: 'Director' },
      ...(e.workspace ? { tenant_uid: e.workspace } : {}),
      ...(e.sessionId ? { correlation_uid: e.sessionId } : {}),
    },
    ...(e.actor ? { actor: { user: { uid: e.actor } } } : {}),
    ...(e.sandboxId || e.networkId
      ? {
          resources: [
            ...(e.sandboxId ? [{ uid: e.sandboxId, type: 'sandbox' }] : []),
            ...(e.networkId ? [{ uid: e.networkId, type: 'network' }] : []),
          ],
        }
      : {}),
    unmapped: d,
  };
  switch (cls.class_uid) {
    case 4001: {
      const audit = d.wouldDrop === true || d.audit === true;
      out.disposition_id = audit ? 1 : 2;
      out.disposition = audit ? 'Allowed' : 'Blocked';
      if (str(d.source) || str(d.client)) out.src_endpoint = { ip: str(d.source) ?? str(d.client) };
      const dst = str(d.destination);
      out.dst_endpoint = {
        ...(dst ? { ip: dst } : {}),
        ...(num(d.port) ? { port: num(d.port) } : {}),
        ...(str(d.name) ? { hostname: str(d.name) } : {}),
      };
      if (str(d.protocol)) out.connection_info = { protocol_name: str(d.protocol) };
      break;
    }
    case 3002:
      out.status_id = 2;
      out.status = 'Failure';
      if (str(d.reason) || str(d.scope)) out.status_detail = str(d.reason) ?? `scope ${str(d.scope)} required`;
      if (str(d.username)) out.user = { name: str(d.username) };
      break;
    case 1007:
      out.status_id = 2;
      out.status = 'Failure';
      if (str(d.reason)) out.status_detail = str(d.reason);
      break;
    case 2004: {
      const alert = (d.alert ?? {}) as { rule?: unknown; message?: unknown };
      out.finding_info = {
        uid: e.id,
        title: str(alert.message) ?? str(d.issue) ?? e.type,
        types: [e.type],
        ...(str(alert.rule) ? { analytic: { name: str(alert.rule), type_id: 1, type: 'Rule' } } : {}),
      };
      out.status_id = act.id === 3 ? 4 : 1;
      out.status = act.id === 3 ? 'Resolved' : 'New';
      break;
    }
    default:
      break;
  }
  return out;
}

/** One export line: the event, its format version and its OCSF rendering. */
export const exportLine = (e: SecurityEvent): string =>
  `${JSON.stringify({ schemaVersion: EXPORT_SCHEMA_VERSION, ...e, ocsf: toOcsf(e) })}\n`;
