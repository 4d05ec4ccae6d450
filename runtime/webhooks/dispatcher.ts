import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { EventSink, SecurityEvent } from '../events.ts';
import { backoffMs } from './backoff.ts';
import { eventData, eventName, subscribes } from './catalogue.ts';
import type { DispatcherOptions } from './options.ts';
import { signBody, webhookBody } from './signature.ts';
import type { DeliveryRecord, WebhookStore } from './store.ts';
import type { Transport } from './transport.ts';

export interface DispatcherDeps {
  store: WebhookStore;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  transport: Transport;
  options: DispatcherOptions;
  /** Random source for retry jitter (0..1). */
  random?: () => number;
}

/** Origin only: webhook URLs often carry a token in the path or query, so logs never show them whole. */
const originOf = (url: string): string => {
  try {
    return new URL(url).origin;
  } catch {
    return 'invalid-url';
  }
};

const describe = (err: unknown, timedOut: boolean, timeoutMs: number): string => {
  if (timedOut) return `timeout after ${timeoutMs} ms`;
  const e = err as { code?: unknown; message?: unknown; name?: unknown };
  if (e.name === 'TargetRefusedError') return `refused: ${String(e.message)}`;
  const code = typeof e.code === 'string' ? e.code : null;
  const message = typeof e.message === 'string' ? e.message : String(err);
  return (code && !message.includes(code) ? `${code}: ${message}` : message).slice(0, 300);
};

/**
 * Delivers security events to webhooks, at least once. Events are turned into queued deliveries
 * (rows in the store, so a restart resumes them); each webhook has at most one attempt in flight
 * and its oldest pending delivery goes first, so a receiver sees its events in order. A non-2xx
 * answer (3xx included: redirects are not followed), a timeout or a connection error schedules a
 * retry with exponential backoff until `maxAttempts`; then the delivery is `failed` and the next
 * one proceeds. An attempt cut short by shutdown is not recorded and runs again after restart.
 */
export class WebhookDispatcher {
  readonly #d: DispatcherDeps;
  readonly #log: Logger;
  /** Webhook id → the delivery in flight. */
  readonly #inFlight = new Map<string, { deliveryId: string; done: Promise<void> }>();
  readonly #shutdown = new AbortController();
  #unsubscribe: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  #timerAtMs = Infinity;
  #kicked = false;
  #closed = false;

  constructor(deps: DispatcherDeps) {
    this.#d = deps;
    this.#log = deps.logger.child({ component: 'webhooks' });
  }

  /** Subscribes to events and resumes the persisted queue. */
  start(): void {
    if (this.#unsubscribe || this.#closed) return;
    this.#unsubscribe = this.#d.events.subscribe((e) => this.onEvent(e));
    this.#kick();
  }

  /** Stops taking events, aborts attempts in flight (they stay pending) and waits for them. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#timer) clearTimeout(this.#timer);
    this.#shutdown.abort();
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.done));
  }

  /** Queues a delivery of `e` to every webhook of its workspace subscribed to it. */
  onEvent(e: SecurityEvent): void {
    if (this.#closed || !e.workspace) return;
    // Most events match no webhook: decided from memory, without a query.
    if (!this.#d.store.subscriptions(e.workspace).some((events) => subscribes(events, e))) return;
    const hooks = this.#d.store.ofWorkspace(e.workspace).filter((h) => subscribes(h.events, e));
    if (hooks.length === 0) return;
    const event = eventName(e);
    const body = webhookBody({ event, data: eventData(e), timestamp: e.timestamp });
    for (const h of hooks) {
      const { delivery, dropped } = this.#d.store.enqueue(
        { webhookId: h.id, event, eventId: e.id, body },
        this.#d.options.maxPendingPerWebhook,
        this.#inFlight.get(h.id)?.deliveryId ?? null,
      );
      if (dropped.length) {
        this.#log.warn(
          {
            webhookId: h.id,
            dropped,
            droppedTotal: h.dropped + dropped.length,
            queued: delivery.id,
            maxPending: this.#d.options.maxPendingPerWebhook,
          },
          'webhook queue full: dropped the oldest pending deliveries',
        );
      }
    }
    this.#kick();
  }

  /** Runs {@link #tick} soon, once, however many events arrive meanwhile. */
  #kick(): void {
    if (this.#kicked || this.#closed) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      this.#tick();
    });
  }

  /** Starts every due head delivery whose webhook is idle, and sleeps until the next one is due. */
  #tick(): void {
    if (this.#closed) return;
    let heads: DeliveryRecord[];
    try {
      heads = this.#d.store.heads();
    } catch (err) {
      this.#log.error({ err }, 'webhook queue unreadable');
      return this.#wakeAt(this.#d.clock.nowMs() + this.#d.options.baseDelayMs);
    }
    const now = this.#d.clock.nowMs();
    let next = Infinity;
    for (const d of heads) {
      if (this.#inFlight.has(d.webhookId)) continue;
      if ((d.nextMs ?? now) > now) {
        next = Math.min(next, d.nextMs ?? now);
        continue;
      }
      if (this.#inFlight.size >= this.#d.options.maxConcurrent) break;
      const done = this.#attempt(d).finally(() => {
        this.#inFlight.delete(d.webhookId);
        this.#kick();
      });
      this.#inFlight.set(d.webhookId, { deliveryId: d.id, done });
    }
    this.#wakeAt(next);
  }

  #wakeAt(atMs: number): void {
    if (this.#closed || atMs === Infinity) return;
    if (this.#timer && this.#timerAtMs <= atMs) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAtMs = atMs;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.#timerAtMs = Infinity;
        this.#tick();
      },
      Math.max(0, atMs - this.#d.clock.nowMs()),
    );
    this.#timer.unref();
  }

  async #attempt(d: DeliveryRecord): Promise<void> {
    const o = this.#d.options;
    const target = this.#d.store.target(d.webhookId);
    if (!target) return; // deleted meanwhile: its queue went with it
    const attempt = d.attempts + 1;
    const startedMs = this.#d.clock.nowMs();
    const t0 = performance.now();
    const timeout = AbortSignal.timeout(o.timeoutMs);
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      const res = await this.#d.transport({
        url: target.url,
        body: d.body,
        signal: AbortSignal.any([timeout, this.#shutdown.signal]),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Director-Webhooks/1',
          'x-director-event': d.event,
          'x-director-delivery': d.id,
          'x-director-attempt': String(attempt),
          'x-director-timestamp': String(Math.floor(startedMs / 1000)),
          'x-director-signature': signBody(d.body, target.secret),
        },
      });
      statusCode = res.statusCode;
      if (statusCode >= 300 && statusCode < 400) error = 'redirect not followed';
    } catch (err) {
      if (this.#shutdown.signal.aborted) return; // not an attempt: it runs again after restart
      error = describe(err, timeout.aborted, o.timeoutMs);
    }
    const durationMs = Math.round(performance.now() - t0);
    const delivered = statusCode !== null && statusCode >= 200 && statusCode < 300;
    const final = delivered || attempt >= o.maxAttempts;
    const nextMs = final ? null : this.#d.clock.nowMs() + backoffMs(attempt, o, (this.#d.random ?? Math.random)(), o.jitterRatio);
    const state = delivered ? 'delivered' : final ? 'failed' : 'pending';
    try {
      this.#d.store.recordAttempt(d.id, { attempt, startedMs, statusCode, error, durationMs, nextMs }, state);
      if (final) this.#d.store.prune(d.webhookId, o.logRetention);
    } catch (err) {
      if (this.#closed) return;
      this.#log.error({ err, webhookId: d.webhookId, deliveryId: d.id }, 'could not record a webhook attempt');
      return;
    }
    const fields = {
      webhookId: d.webhookId,
      deliveryId: d.id,
      event: d.event,
      attempt,
      statusCode,
      error,
      durationMs,
      target: originOf(target.url),
    };
    if (state === 'failed') this.#log.warn(fields, 'webhook delivery failed for good');
    else if (state === 'pending')
      this.#log.info({ ...fields, retryInMs: (nextMs ?? 0) - this.#d.clock.nowMs() }, 'webhook delivery attempt failed; will retry');
    else this.#log.debug(fields, 'webhook delivered');
  }
}
