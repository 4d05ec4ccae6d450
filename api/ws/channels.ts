import type { EventSink, SecurityEvent } from '../../runtime/events.ts';
import type { Db } from '../../core/db.ts';
import type { Scope } from '../auth/types.ts';

/**
 * Channels are what a hub client subscribes to. Each is registered with the hub as data —
 * the scope it needs and a source — so later layers add channels without touching the hub:
 *
 * - `security` (`security:read`): every security event of the caller's workspace as
 *   `security_event`; events of type `security_alert` as `security_alert {alert}` instead.
 * - `sandboxes` (`sandboxes:read`): lifecycle as `sandbox_event {sandboxId, event, status}`, with
 *   `resourceUsage {cpu, memory}` when the monitoring sampler measured the sandbox.
 * - `sessions` (`sessions:read`): session lifecycle and metric changes (coalesced per session) as
 *   `session_update {sessionId, status, metrics}`.
 * - `alerts` (`security:read`): only `security_alert {alert}`.
 * A client that subscribes to nothing gets {@link DEFAULT_CHANNELS}.
 * - `workflows` (`sessions:read`): the seed's `workflow_progress {workflowId, step, totalSteps,
 *   progress, currentStep: {type, status, startTime}}` (plus `runId`) as each step starts and
 *   ends, and how each run ended as `workflow_completed` / `workflow_failed` (the webhook's `data`:
 *   `{workflowId, sessionId, status, result: {success, output}}`).
 *
 * Extension point: other areas (`sessions` → `session_update`) register the same way — with
 * {@link eventChannel} if their updates go through the event store, or any other
 * {@link ChannelSource} with a monotonic cursor — through the `channels` option of the WebSocket
 * plugin (or `hub.registerChannel`).
 */

/** One item of a channel's stream, already translated to the message a client receives. */
export interface ChannelItem {
  /** Monotonic position in the stream; the resume cursor. */
  cursor: number;
  /** Only subscribers acting in this workspace receive the item; null reaches no one. */
  workspace: string | null;
  /** The message type (`security_event`, `sandbox_event` ...). */
  type: string;
  data: unknown;
}

export interface ChannelPage {
  /** Items of the workspace after the requested cursor, oldest first. */
  items: ChannelItem[];
  /** Where the next page starts (the last position examined, even if it produced no item). */
  cursor: number;
  /** True when nothing was left after `cursor` at the time of reading. */
  done: boolean;
}

/**
 * Where a channel's items come from. `subscribe` and `page` must agree on cursors: the hub
 * replays with `page` and then switches to `subscribe` in one synchronous step, which is what
 * makes resume lossless.
 */
export interface ChannelSource {
  /** Live items, in cursor order. The listener never blocks; returns the unsubscribe function. */
  subscribe(listener: (item: ChannelItem) => void): () => void;
  /** Stored items of `workspace` after `after`, examining at most `limit` positions. */
  page(workspace: string, after: number, limit: number): ChannelPage;
  /** The newest cursor: where a subscriber that asks for no replay starts. */
  head(): number;
}

export interface ChannelDefinition {
  /** Scope the caller needs to subscribe (checked again when its credentials are re-checked). */
  scope: Scope;
  source: ChannelSource;
}

/** Turns a stored event into a channel message, or null when the channel does not carry it. */
export type EventMapper = (e: SecurityEvent) => { type: string; data: unknown } | null;

/** The newest event sequence number. `EventSink` has no such query, so it is read here. */
export function eventHead(db: Db): () => number {
  const stmt = db.sql.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM events');
  return () => Number((stmt.get() as { seq: number | bigint }).seq);
}

/** A channel over the security event store and bus; the event's `seq` is the cursor. */
export function eventChannel(events: EventSink, head: () => number, scope: Scope, map: EventMapper): ChannelDefinition {
  const toItem = (e: SecurityEvent): ChannelItem | null => {
    const m = map(e);
    return m ? { cursor: e.seq, workspace: e.workspace, type: m.type, data: m.data } : null;
  };
  return {
    scope,
    source: {
      subscribe: (listener) =>
        events.subscribe((e) => {
          const item = toItem(e);
          if (item) listener(item);
        }),
      page(workspace, after, limit) {
        const rows = events.list({ workspace, afterSeq: after, limit });
        const items: ChannelItem[] = [];
        for (const e of rows) {
          const item = toItem(e);
          if (item) items.push(item);
        }
        return { items, cursor: rows.at(-1)?.seq ?? after, done: rows.length < limit };
      },
      head,
    },
  };
}

/**
 * The Director Protocol's alert shape. The alert engine stores it in `details.alert`; flat `details` are
 * read too, and the event's own severity and time fill what is missing.
 */
export function alertOf(e: SecurityEvent): { alert: { rule: string; severity: string; message: string; timestamp: string } } {
  const nested = e.details.alert;
  const d = nested !== null && typeof nested === 'object' && !Array.isArray(nested) ? (nested as Record<string, unknown>) : e.details;
  const text = (v: unknown, fallback: string) => (typeof v === 'string' && v !== '' ? v : fallback);
  return {
    alert: {
      rule: text(d.rule, 'UNSPECIFIED'),
      severity: text(d.severity, e.severity),
      message: text(d.message, ''),
      timestamp: text(d.timestamp, e.timestamp),
    },
  };
}

export const securityMapper: EventMapper = (e) =>
  e.type === 'security_alert' ? { type: 'security_alert', data: alertOf(e) } : { type: 'security_event', data: e };

const LIFECYCLE: Record<string, 'created' | 'stopped' | 'deleted' | 'exited'> = {
  sandbox_created: 'created',
  sandbox_stopped: 'stopped',
  sandbox_deleted: 'deleted',
  sandbox_exited: 'exited',
};

export const sandboxMapper: EventMapper = (e) => {
  const event = Object.hasOwn(LIFECYCLE, e.type) ? LIFECYCLE[e.type] : undefined;
  if (!event || !e.sandboxId) return null;
  const d = e.details;
  const data: Record<string, unknown> = {
    sandboxId: e.sandboxId,
    event,
    status: typeof d.status === 'string' ? d.status : null,
    timestamp: e.timestamp,
  };
  if (d.resourceUsage && typeof d.resourceUsage === 'object') data.resourceUsage = d.resourceUsage;
  if (typeof d.exitCode === 'number') data.exitCode = d.exitCode;
  if (typeof d.reason === 'string') data.reason = d.reason;
  return { type: 'sandbox_event', data };
};

const SESSION_EVENTS = new Set(['session_created', 'session_updated', 'session_ended']);

/** Session lifecycle as the Director Protocol's `session_update {sessionId, status, metrics}`. */
export const sessionMapper: EventMapper = (e) => {
  if (!SESSION_EVENTS.has(e.type) || !e.sessionId) return null;
  const d = e.details;
  const metrics = d.metrics && typeof d.metrics === 'object' ? d.metrics : { activeDepartments: 0, totalTasks: 0 };
  return {
    type: 'session_update',
    data: {
      sessionId: e.sessionId,
      status: typeof d.status === 'string' ? d.status : null,
      metrics,
      timestamp: e.timestamp,
      ...(typeof d.reason === 'string' ? { reason: d.reason } : {}),
    },
  };
};

/** Only the `security_alert` events (the Director Protocol's `security_alert {alert}`), without every other security event. */
export const alertMapper: EventMapper = (e) => (e.type === 'security_alert' ? { type: 'security_alert', data: alertOf(e) } : null);

/**
 * What a client that authenticated and subscribed to nothing receives (the Director Protocol's
 * own WebSocket example does exactly that): the four message types the protocol lists, for the
 * channels the caller's scopes allow. Its first explicit `subscribe` replaces this set.
 */
export const DEFAULT_CHANNELS = ['sessions', 'workflows', 'sandboxes', 'alerts'] as const;
const WORKFLOW_TYPES = new Set(['workflow_progress', 'workflow_completed', 'workflow_failed']);

export const workflowMapper: EventMapper = (e) => (WORKFLOW_TYPES.has(e.type) ? { type: e.type, data: e.details } : null);

/** The channels every hub has. */
export function builtinChannels(events: EventSink, db: Db): Record<string, ChannelDefinition> {
  const head = eventHead(db);
  return {
    security: eventChannel(events, head, 'security:read', securityMapper),
    sandboxes: eventChannel(events, head, 'sandboxes:read', sandboxMapper),
    sessions: eventChannel(events, head, 'sessions:read', sessionMapper),
    alerts: eventChannel(events, head, 'security:read', alertMapper),
    workflows: eventChannel(events, head, 'sessions:read', workflowMapper),
  };
}
