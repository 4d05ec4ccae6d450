import type { Db } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { newId } from '../../core/ids.ts';

export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'dropped';

export interface WebhookRecord {
  id: string;
  workspace: string;
  url: string;
  events: string[];
  createdBy: string | null;
  /** Deliveries dropped because the queue was full. */
  dropped: number;
  createdMs: number;
}

export interface AttemptRecord {
  attempt: number;
  startedMs: number;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** When the next attempt is due; null after the last one. */
  nextMs: number | null;
}

export interface DeliveryRecord {
  seq: number;
  id: string;
  webhookId: string;
  event: string;
  eventId: string | null;
  body: string;
  state: DeliveryState;
  attempts: number;
  nextMs: number | null;
  createdMs: number;
  completedMs: number | null;
}

interface WebhookRow {
  id: string;
  workspace: string;
  url: string;
  events: string;
  created_by: string | null;
  dropped: number;
  created_ms: number;
}
interface DeliveryRow {
  seq: number;
  id: string;
  webhook_id: string;
  event: string;
  event_id: string | null;
  body: string;
  state: string;
  attempts: number;
  next_ms: number | null;
  created_ms: number;
  completed_ms: number | null;
}
interface AttemptRow {
  delivery_id: string;
  attempt: number;
  started_ms: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  next_ms: number | null;
}

const WEBHOOK_COLUMNS = 'id, workspace, url, events, created_by, dropped, created_ms';

const toWebhook = (r: WebhookRow): WebhookRecord => ({
  id: r.id,
  workspace: r.workspace,
  url: r.url,
  events: JSON.parse(r.events) as string[],
  createdBy: r.created_by,
  dropped: r.dropped,
  createdMs: r.created_ms,
});
const toDelivery = (r: DeliveryRow): DeliveryRecord => ({
  seq: r.seq,
  id: r.id,
  webhookId: r.webhook_id,
  event: r.event,
  eventId: r.event_id,
  body: r.body,
  state: r.state as DeliveryState,
  attempts: r.attempts,
  nextMs: r.next_ms,
  createdMs: r.created_ms,
  completedMs: r.completed_ms,
});
const toAttempt = (r: AttemptRow): AttemptRecord => ({
  attempt: r.attempt,
  startedMs: r.started_ms,
  statusCode: r.status_code,
  error: r.error,
  durationMs: r.duration_ms,
  nextMs: r.next_ms,
});

/**
 * Webhooks and their delivery queue in the embedded store. The queue is the `pending` rows of
 * `webhook_deliveries`, so it survives a restart; every attempt is kept in `webhook_attempts`
 * for the delivery log. Secrets are stored as given: they must be usable to sign, and the store
 * lives in the 0700 data directory; no query here returns them except {@link WebhookStore.target}.
 */
export class WebhookStore {
  readonly #db: Db;
  readonly #clock: Clock;
  /**
   * What each workspace's webhooks subscribe to, read on every event: cached, and dropped on
   * every create and delete (this store is the only writer of the table).
   */
  readonly #subscriptions = new Map<string, readonly (readonly string[])[]>();
  constructor(db: Db, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  create(input: { workspace: string; url: string; events: string[]; secret: string; createdBy: string | null }): WebhookRecord {
    const rec: WebhookRecord = {
      id: newId('whk'),
      workspace: input.workspace,
      url: input.url,
      events: input.events,
      createdBy: input.createdBy,
      dropped: 0,
      createdMs: this.#clock.nowMs(),
    };
    this.#db.sql
      .prepare('INSERT INTO webhooks (id, workspace, url, events, secret, created_by, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(rec.id, rec.workspace, rec.url, JSON.stringify(rec.events), input.secret, rec.createdBy, rec.createdMs);
    this.#subscriptions.delete(rec.workspace);
    return rec;
  }

  /** The webhook `id` of `workspace`; null for another workspace's, as for a missing one. */
  get(workspace: string, id: string): WebhookRecord | null {
    const r = this.#db.sql.prepare(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND workspace = ?`).get(id, workspace) as
      WebhookRow | undefined;
    return r ? toWebhook(r) : null;
  }

  list(workspace: string, page: { limit: number; offset: number }): { items: WebhookRecord[]; total: number } {
    const rows = this.#db.sql
      .prepare(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE workspace = ? ORDER BY created_ms, id LIMIT ? OFFSET ?`)
      .all(workspace, page.limit, page.offset) as unknown as WebhookRow[];
    const { n } = this.#db.sql.prepare('SELECT COUNT(*) AS n FROM webhooks WHERE workspace = ?').get(workspace) as { n: number };
    return { items: rows.map(toWebhook), total: n };
  }

  count(workspace: string): number {
    return (this.#db.sql.prepare('SELECT COUNT(*) AS n FROM webhooks WHERE workspace = ?').get(workspace) as { n: number }).n;
  }

  /** The event lists the webhooks of `workspace` subscribe to (one per webhook), from memory after the first read. */
  subscriptions(workspace: string): readonly (readonly string[])[] {
    let subs = this.#subscriptions.get(workspace);
    if (!subs) {
      subs = this.ofWorkspace(workspace).map((h) => h.events);
      this.#subscriptions.set(workspace, subs);
    }
    return subs;
  }

  /** Every webhook of `workspace` (the dispatcher filters by event). */
  ofWorkspace(workspace: string): WebhookRecord[] {
    return (
      this.#db.sql.prepare(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE workspace = ?`).all(workspace) as unknown as WebhookRow[]
    ).map(toWebhook);
  }

  /** URL and signing secret, for the dispatcher only. */
  target(id: string): { url: string; secret: string } | null {
    return (
      (this.#db.sql.prepare('SELECT url, secret FROM webhooks WHERE id = ?').get(id) as { url: string; secret: string } | undefined) ?? null
    );
  }

  /** Deletes the webhook with its queue and log; false when it is not `workspace`'s. */
  delete(workspace: string, id: string): boolean {
    return this.#db.tx(() => {
      const { changes } = this.#db.sql.prepare('DELETE FROM webhooks WHERE id = ? AND workspace = ?').run(id, workspace);
      if (!changes) return false;
      this.#subscriptions.delete(workspace);
      this.#db.sql
        .prepare('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ?)')
        .run(id);
      this.#db.sql.prepare('DELETE FROM webhook_deliveries WHERE webhook_id = ?').run(id);
      return true;
    });
  }

  pendingCount(webhookId: string): number {
    return (
      this.#db.sql.prepare("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = ? AND state = 'pending'").get(webhookId) as {
        n: number;
      }
    ).n;
  }

  /**
   * Queues a delivery. When the webhook already has `maxPending` pending deliveries, the oldest
   * ones not in flight are marked `dropped` (and counted on the webhook) to make room; their ids
   * are returned so the caller can log them.
   */
  enqueue(
    input: { webhookId: string; event: string; eventId: string | null; body: string },
    maxPending: number,
    inFlight: string | null,
  ): { delivery: DeliveryRecord; dropped: string[] } {
    return this.#db.tx(() => {
      const now = this.#clock.nowMs();
      const over = this.pendingCount(input.webhookId) - maxPending + 1;
      let dropped: string[] = [];
      if (over > 0) {
        dropped = (
          this.#db.sql
            .prepare("SELECT id FROM webhook_deliveries WHERE webhook_id = ? AND state = 'pending' AND id != ? ORDER BY seq LIMIT ?")
            .all(input.webhookId, inFlight ?? '', over) as { id: string }[]
        ).map((r) => r.id);
        const mark = this.#db.sql.prepare("UPDATE webhook_deliveries SET state = 'dropped', next_ms = NULL, completed_ms = ? WHERE id = ?");
        for (const id of dropped) mark.run(now, id);
        this.#db.sql.prepare('UPDATE webhooks SET dropped = dropped + ? WHERE id = ?').run(dropped.length, input.webhookId);
      }
      const id = newId('dlv');
      const { seq } = this.#db.sql
        .prepare(
          "INSERT INTO webhook_deliveries (id, webhook_id, event, event_id, body, state, attempts, next_ms, created_ms) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?) RETURNING seq",
        )
        .get(id, input.webhookId, input.event, input.eventId, input.body, now, now) as { seq: number };
      return {
        delivery: {
          seq,
          id,
          webhookId: input.webhookId,
          event: input.event,
          eventId: input.eventId,
          body: input.body,
          state: 'pending',
          attempts: 0,
          nextMs: now,
          createdMs: now,
          completedMs: null,
        },
        dropped,
      };
    });
  }

  /** The oldest pending delivery of every webhook: what may be attempted next (one per webhook keeps order). */
  heads(): DeliveryRecord[] {
    const rows = this.#db.sql
      .prepare(
        `SELECT d.* FROM webhook_deliveries d
      WHERE d.state = 'pending' AND d.seq = (SELECT MIN(seq) FROM webhook_deliveries WHERE webhook_id = d.webhook_id AND state = 'pending')
      ORDER BY d.next_ms`,
      )
      .all() as unknown as DeliveryRow[];
    return rows.map(toDelivery);
  }

  /**
   * Records one attempt and moves the delivery on: to `delivered` or `failed` (with `nextMs`
   * null), or back to `pending` due at `nextMs`. A delivery that was dropped or deleted meanwhile
   * keeps its state.
   */
  recordAttempt(deliveryId: string, a: AttemptRecord, state: 'pending' | 'delivered' | 'failed'): void {
    this.#db.tx(() => {
      const { changes } = this.#db.sql
        .prepare("UPDATE webhook_deliveries SET attempts = ?, state = ?, next_ms = ?, completed_ms = ? WHERE id = ? AND state = 'pending'")
        .run(a.attempt, state, a.nextMs, state === 'pending' ? null : a.startedMs + a.durationMs, deliveryId);
      if (!changes) return;
      this.#db.sql
        .prepare(
          'INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, started_ms, status_code, error, duration_ms, next_ms) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(deliveryId, a.attempt, a.startedMs, a.statusCode, a.error, a.durationMs, a.nextMs);
    });
  }

  /** Keeps the newest `keep` finished deliveries of a webhook (pending ones are never pruned). */
  prune(webhookId: string, keep: number): void {
    this.#db.tx(() => {
      const cut = this.#db.sql
        .prepare("SELECT seq FROM webhook_deliveries WHERE webhook_id = ? AND state != 'pending' ORDER BY seq DESC LIMIT 1 OFFSET ?")
        .get(webhookId, keep) as { seq: number } | undefined;
      if (!cut) return;
      this.#db.sql
        .prepare(
          "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ? AND state != 'pending' AND seq <= ?)",
        )
        .run(webhookId, cut.seq);
      this.#db.sql
        .prepare("DELETE FROM webhook_deliveries WHERE webhook_id = ? AND state != 'pending' AND seq <= ?")
        .run(webhookId, cut.seq);
    });
  }

  /** The delivery log of a webhook, newest first, paged by `seq` (`beforeSeq` is the cursor). */
  deliveries(
    webhookId: string,
    page: { limit: number; beforeSeq?: number; state?: DeliveryState },
  ): { delivery: DeliveryRecord; attempts: AttemptRecord[] }[] {
    const rows = this.#db.sql
      .prepare(
        `SELECT * FROM webhook_deliveries WHERE webhook_id = ? AND seq < ? ${page.state ? 'AND state = ?' : ''} ORDER BY seq DESC LIMIT ?`,
      )
      .all(
        ...[webhookId, page.beforeSeq ?? Number.MAX_SAFE_INTEGER, ...(page.state ? [page.state] : []), page.limit],
      ) as unknown as DeliveryRow[];
    const attempts = this.#db.sql.prepare('SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt');
    return rows.map((r) => ({ delivery: toDelivery(r), attempts: (attempts.all(r.id) as unknown as AttemptRow[]).map(toAttempt) }));
  }
}
