import type { SecurityEvent } from '../events.ts';

/**
 * The webhook event catalogue: the Director Protocol's dotted names, and how Director's security events map
 * onto them. A webhook subscribes to names from this catalogue; each event is delivered at most
 * once per webhook, under its one canonical name.
 */

/** Lifecycle event types and the dotted name each is delivered as. */
const LIFECYCLE: Readonly<Record<string, string>> = {
  sandbox_created: 'sandbox.created',
  sandbox_stopped: 'sandbox.stopped',
  sandbox_deleted: 'sandbox.deleted',
  sandbox_exited: 'sandbox.exited',
  session_created: 'session.created',
  session_ended: 'session.ended',
};

/**
 * How workflow runs end, and the dotted name each is delivered as. Their `data` is the seed's
 * webhook payload `{workflowId, sessionId, status, result: {success, output}}` (plus `runId` and,
 * unless completed, `reason`); `workflow.failed` covers every end but completion (`status` says
 * which: failed, cancelled, timed_out).
 */
const WORKFLOW: Readonly<Record<string, string>> = {
  workflow_completed: 'workflow.completed',
  workflow_failed: 'workflow.failed',
};

/** Event types no webhook receives: a run's step-by-step progress goes to WebSocket subscribers, webhooks get how it ended. */
const NOT_DELIVERED: ReadonlySet<string> = new Set(['workflow_progress']);

/** Every fixed name a webhook may subscribe to. */
export const WEBHOOK_EVENTS = ['*', ...Object.values(LIFECYCLE), 'security.alert', 'security.event', ...Object.values(WORKFLOW)] as const;

const FIXED: ReadonlySet<string> = new Set(WEBHOOK_EVENTS);
/** `security.<type>`: a filter on one security event type (delivered as `security.event`). */
const SECURITY_TYPE = /^security\.([a-z][a-z0-9_]{1,63})$/;

/** Why `name` cannot be subscribed to, or null when it can. */
export function checkEventName(name: string): string | null {
  if (FIXED.has(name)) return null;
  const m = SECURITY_TYPE.exec(name);
  if (!m) return `unknown event "${name}" (one of ${WEBHOOK_EVENTS.join(', ')}, or security.<type> such as security.egress_denied)`;
  const type = m[1]!;
  if (type in LIFECYCLE) return `"${name}" is delivered as ${LIFECYCLE[type]}; subscribe to that`;
  if (Object.hasOwn(WORKFLOW, type)) return `"${name}" is delivered as ${WORKFLOW[type]}; subscribe to that`;
  if (NOT_DELIVERED.has(type)) return `"${type}" events are not delivered to webhooks (subscribe to the WebSocket channel workflows)`;
  if (type === 'security_alert') return `"${name}" is delivered as security.alert; subscribe to that`;
  return null;
}

/** The dotted name `e` is delivered as. */
export function eventName(e: Pick<SecurityEvent, 'type'>): string {
  return (
    LIFECYCLE[e.type] ??
    (Object.hasOwn(WORKFLOW, e.type) ? WORKFLOW[e.type] : undefined) ??
    (e.type === 'security_alert' ? 'security.alert' : 'security.event')
  );
}

/** Whether a webhook subscribed to `subscribed` receives `e`. */
export function subscribes(subscribed: readonly string[], e: Pick<SecurityEvent, 'type'>): boolean {
  if (NOT_DELIVERED.has(e.type)) return false;
  const name = eventName(e);
  return subscribed.some((s) => s === '*' || s === name || (name === 'security.event' && s === `security.${e.type}`));
}

/**
 * The payload's `data`: a lifecycle event names the sandbox and carries its details flat (the
 * seed's `data` is the resource); a workflow's end is the seed's workflow payload as stored; every
 * security event carries the full event.
 */
export function eventData(e: SecurityEvent): Record<string, unknown> {
  if (e.type === 'session_created' || e.type === 'session_ended') {
    return { ...e.details, sessionId: e.sessionId, actor: e.actor, eventId: e.id };
  }
  if (Object.hasOwn(WORKFLOW, e.type)) return { ...e.details };
  if (e.type in LIFECYCLE) {
    return { ...e.details, sandboxId: e.sandboxId, networkId: e.networkId, actor: e.actor, eventId: e.id };
  }
  return { ...e };
}
