import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';
import { DirectorError, notFound, validationError } from '../../core/errors.ts';
import type { EventSink } from '../events.ts';
import type { Caller } from '../sandbox/caller.ts';
import { checkEventName } from './catalogue.ts';
import { WebhookDispatcher } from './dispatcher.ts';
import { checkUrl, resolveChecked, systemLookup, TargetRefusedError, type LookupAll, type TargetPolicy } from './guard.ts';
import { targetPolicy, type DispatcherOptions } from './options.ts';
import { WebhookStore, type AttemptRecord, type DeliveryRecord, type DeliveryState, type WebhookRecord } from './store.ts';
import { httpTransport } from './transport.ts';

/** How long creation waits for DNS before accepting a name it could not resolve (delivery checks again). */
const CREATE_LOOKUP_TIMEOUT_MS = 3000;

export interface WebhookDeps {
  db: Db;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  /** Resolved delivery settings (`resolveOptions`: defaults, the operator's settings, overrides). */
  options: DispatcherOptions;
}

export interface CreateWebhook {
  url: string;
  events: string[];
  secret: string;
}

/**
 * Webhooks: Director's one event stream delivered to the outside, signed and at least once. A
 * workspace's webhooks (create, list, delete, the delivery log) and the dispatcher that delivers
 * to them, started and stopped with the runtime. Later layers add event types to the same
 * stream (`workflow.completed`...); see `catalogue.ts` for how events map to webhook names.
 */
export class Webhooks {
  readonly store: WebhookStore;
  readonly options: DispatcherOptions;
  readonly #deps: WebhookDeps;
  readonly #policy: TargetPolicy;
  readonly #lookup: LookupAll;
  readonly #dispatcher: WebhookDispatcher;

  constructor(deps: WebhookDeps) {
    this.#deps = deps;
    this.options = deps.options;
    this.#policy = targetPolicy(deps.options);
    this.#lookup = deps.options.lookup ?? systemLookup;
    this.store = new WebhookStore(deps.db, deps.clock);
    this.#dispatcher = new WebhookDispatcher({
      store: this.store,
      events: deps.events,
      clock: deps.clock,
      logger: deps.logger,
      options: deps.options,
      transport: deps.options.transport ?? httpTransport(this.#policy, this.#lookup),
    });
  }

  /** Subscribes the dispatcher to the event stream and resumes the persisted queue. */
  start(): void {
    this.#dispatcher.start();
  }

  /** Stops delivering; attempts in flight stay pending for the next start. */
  stop(): Promise<void> {
    return this.#dispatcher.stop();
  }

  /**
   * Creates a webhook after checking what its schema cannot: event names, the SSRF guard (the
   * name is resolved: a name that does not resolve yet is accepted, since every delivery resolves
   * and checks again) and the per-workspace limit. Recorded as `webhook_created`.
   */
  async create(caller: Caller, body: CreateWebhook): Promise<WebhookRecord> {
    await this.#checkCreate(body);
    const max = this.options.maxWebhooksPerWorkspace;
    if (this.store.count(caller.workspace) >= max) {
      throw new DirectorError('UNPROCESSABLE', `a workspace has at most ${max} webhooks`, { limit: max });
    }
    const rec = this.store.create({
      workspace: caller.workspace,
      url: body.url,
      events: body.events,
      secret: body.secret,
      createdBy: caller.actor ?? null,
    });
    this.#deps.events.emit({
      type: 'webhook_created',
      severity: 'low',
      workspace: caller.workspace,
      actor: caller.actor,
      details: { webhookId: rec.id, target: new URL(rec.url).origin, events: rec.events },
    });
    return rec;
  }

  list(caller: Caller, page: { limit: number; offset: number }): { items: WebhookRecord[]; total: number } {
    return this.store.list(caller.workspace, page);
  }

  /** The caller's webhook; another workspace's is a 404 like a missing one. */
  get(caller: Caller, id: string): WebhookRecord {
    const rec = this.store.get(caller.workspace, id);
    if (!rec) throw notFound('webhook', id);
    return rec;
  }

  pendingCount(webhookId: string): number {
    return this.store.pendingCount(webhookId);
  }

  /** The delivery log of a webhook (from {@link get}), newest first, before `beforeSeq` when given. */
  deliveries(
    rec: WebhookRecord,
    q: { limit: number; beforeSeq?: number; state?: DeliveryState },
  ): { delivery: DeliveryRecord; attempts: AttemptRecord[] }[] {
    return this.store.deliveries(rec.id, q);
  }

  /** Deletes the caller's webhook, its pending deliveries and its log; recorded as `webhook_deleted`. */
  delete(caller: Caller, id: string): void {
    if (!this.store.delete(caller.workspace, id)) throw notFound('webhook', id);
    this.#deps.events.emit({
      type: 'webhook_deleted',
      severity: 'low',
      workspace: caller.workspace,
      actor: caller.actor,
      details: { webhookId: id },
    });
  }

  async #checkCreate(body: { url: string; events: string[] }): Promise<void> {
    const seen = new Set<string>();
    body.events.forEach((name, i) => {
      const issue = checkEventName(name) ?? (seen.has(name) ? `"${name}" is listed twice` : null);
      if (issue) throw validationError(`events[${i}]`, issue);
      seen.add(name);
    });
    const checked = checkUrl(body.url, this.#policy);
    if ('issue' in checked) throw validationError('url', checked.issue);
    if (checked.target.literal) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('DNS timeout')), CREATE_LOOKUP_TIMEOUT_MS);
    });
    try {
      await Promise.race([resolveChecked(checked.target.hostname, this.#policy, this.#lookup), timeout]);
    } catch (err) {
      // A name that does not resolve yet is accepted: every delivery resolves and checks again.
      if (err instanceof TargetRefusedError) throw validationError('url', `target ${err.message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
