import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { SecurityEvent, Severity } from '../../../runtime/events.ts';
import { exportLine, ocsfClassOf, toOcsf } from '../../../runtime/security/ocsf.ts';

const test = suite('ocsf mapping');

const event = (type: string, details: Record<string, unknown> = {}, severity: Severity = 'medium'): SecurityEvent => ({
  id: 'evt_x',
  seq: 7,
  type,
  severity,
  timestamp: '2026-01-01T00:00:00.000Z',
  workspace: 'wsp_1',
  sandboxId: 'sbx_1',
  networkId: null,
  sessionId: null,
  actor: 'usr_1',
  details,
});

test('each event family maps to its OCSF class', () => {
  const cases: [string, number][] = [
    ['egress_denied', 4001],
    ['ingress_denied', 4001],
    ['egress_audit', 4001],
    ['dns_denied', 4001],
    ['auth_failed', 3002],
    ['login_failed', 3002],
    ['auth_denied', 3002],
    ['scope_denied', 3002],
    ['exec_denied', 1007],
    ['oom_killed', 1007],
    ['timeout_killed', 1007],
    ['pids_limit_reached', 1007],
    ['security_alert', 2004],
    ['security_alert_cleared', 2004],
    ['policy_violation', 2004],
    ['policy_tampered', 2004],
    ['agent_tampered', 2004],
    ['agent_lost', 0],
    ['sandbox_created', 0],
    ['profile_created', 0],
  ];
  for (const [type, cls] of cases) assert.is(ocsfClassOf(type).class_uid, cls, type);
});

test('severity_id runs 1 (info) to 5 (critical) and type_uid is class × 100 + activity', () => {
  const ids = (['info', 'low', 'medium', 'high', 'critical'] as const).map((s) => toOcsf(event('oom_killed', {}, s)).severity_id);
  assert.equal(ids, [1, 2, 3, 4, 5]);
  const o = toOcsf(event('oom_killed'));
  assert.is(o.type_uid, 100700 + Number(o.activity_id));
  assert.is(o.activity_name, 'Terminate');
});

test('a denied egress packet is a refused, blocked network activity with its endpoints', () => {
  const o = toOcsf(event('egress_denied', { source: '10.0.0.2', destination: '1.1.1.1', port: 443, protocol: 'tcp' }, 'high'));
  assert.is(o.class_uid, 4001);
  assert.is(o.activity_id, 5);
  assert.is(o.disposition, 'Blocked');
  assert.equal(o.src_endpoint, { ip: '10.0.0.2' });
  assert.equal(o.dst_endpoint, { ip: '1.1.1.1', port: 443 });
  assert.equal(o.connection_info, { protocol_name: 'tcp' });
  assert.is(toOcsf(event('egress_audit', { wouldDrop: true })).disposition, 'Allowed');
});

test('auth failures are failed logons; alerts are detection findings that close when cleared', () => {
  const auth = toOcsf(event('auth_failed', { reason: 'bad_signature' }));
  assert.is(auth.status, 'Failure');
  assert.is(auth.status_detail, 'bad_signature');
  const alert = toOcsf(event('security_alert', { alert: { rule: 'EGRESS_DENIAL_BURST', message: 'burst' } }, 'high'));
  assert.equal(alert.finding_info, {
    uid: 'evt_x',
    title: 'burst',
    types: ['security_alert'],
    analytic: { name: 'EGRESS_DENIAL_BURST', type_id: 1, type: 'Rule' },
  });
  assert.is(alert.status, 'New');
  assert.is(toOcsf(event('security_alert_cleared', { alert: { rule: 'R' } })).status, 'Resolved');
});

test('metadata carries the event id, seq and workspace; the export line adds schemaVersion', () => {
  const o = toOcsf(event('policy_violation')) as { metadata: Record<string, unknown>; resources: unknown[]; actor: unknown };
  assert.is(o.metadata.uid, 'evt_x');
  assert.is(o.metadata.sequence, 7);
  assert.is(o.metadata.tenant_uid, 'wsp_1');
  assert.equal(o.resources, [{ uid: 'sbx_1', type: 'sandbox' }]);
  assert.equal(o.actor, { user: { uid: 'usr_1' } });
  const line = exportLine(event('policy_violation'));
  assert.ok(line.endsWith('\n'));
  const parsed = JSON.parse(line) as { schemaVersion: string; id: string; ocsf: { class_uid: number } };
  assert.is(parsed.schemaVersion, '1.0');
  assert.is(parsed.id, 'evt_x');
  assert.is(parsed.ocsf.class_uid, 2004);
});

test.run();
