import type { Clock } from '../../core/clock.ts';
import { DirectorError, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { SessionService } from '../sessions/service.ts';
import type { SessionRecord } from '../sessions/store.ts';
import { importanceOf, itemsToRemove } from './retention.ts';
import { ContextItemSchema, CreateContextSchema, type ContextItemInput } from './schemas.ts';
import type { ContextItemRecord, ContextStore, ContextWindowRecord } from './store.ts';
import { notFoundFor } from '../../runtime/not-found.ts';

/** Reads one file of a session's sandbox for a `file://` item (through the runtime's safe file path). */
export type SandboxFileReader = (
  caller: Caller,
  session: SessionRecord,
  sandboxId: string | undefined,
  path: string,
) => Promise<{ content: Buffer; sandboxId: string }>;

export interface ContextServiceDeps {
  store: ContextStore;
  sessions: SessionService;
  events: EventSink;
  clock: Clock;
  config: Pick<Config, 'contextItemMaxBytes' | 'contextMaxItems'>;
  readFile: SandboxFileReader;
}

const FILE_URL = /^file:\/\/(.+)$/;

/**
 * Context windows of a session: ordered items under a size bound and a retention policy (the
 * rule is in `retention.ts`). Items are stored as text: a `file://` item is read once from the
 * session's sandbox when it is added (binary content base64, `metadata.encoding: 'base64'`); a
 * `url` item is a reference that Director never fetches.
 */
export class ContextService {
  readonly #d: ContextServiceDeps;
  constructor(deps: ContextServiceDeps) {
    this.#d = deps;
  }

  async create(caller: Caller, raw: unknown): Promise<{ window: ContextWindowRecord; evicted: string[] }> {
    checkSchema(CreateContextSchema, raw);
    const session = this.#d.sessions.requireActive(caller, raw.sessionId);
    const maxItems = this.#d.config.contextMaxItems;
    const maxSize = raw.config?.maxSize ?? maxItems;
    if (maxSize > maxItems) throw validationError('config.maxSize', `${maxSize} exceeds the operator's limit of ${maxItems} items`);
    const now = this.#d.clock.nowMs();
    // Items are prepared (files read, sizes checked) before anything is stored: a bad item stores nothing.
    const prepared: Awaited<ReturnType<ContextService['prepare']>>[] = [];
    for (const [i, item] of (raw.items ?? []).entries()) prepared.push(await this.prepare(caller, session, item, `items[${i}]`));
    const window: ContextWindowRecord = {
      id: newId('ctx'),
      workspace: caller.workspace,
      sessionId: session.id,
      name: raw.name,
      config: { maxSize, retentionPolicy: raw.config?.retentionPolicy ?? {} },
      createdMs: now,
      updatedMs: now,
    };
    const { store } = this.#d;
    // One transaction: the window and its first items appear together or not at all.
    const evicted = store.tx(() => {
      store.insertWindow(window);
      for (const p of prepared) store.insertItem({ ...p, id: newId('itm'), contextId: window.id, createdMs: now });
      return this.#enforce(window);
    });
    this.#event('context_created', caller, window, { items: prepared.length, evicted: evicted.length });
    return { window, evicted };
  }

  get(caller: Caller, id: string): ContextWindowRecord {
    const w = this.#d.store.get(caller.workspace, id);
    if (!w) throw notFoundFor(this.#d.events, caller, 'context', id, this.#d.store.anyById(id)?.workspace);
    this.#enforce(w);
    return w;
  }

  stats(w: ContextWindowRecord): { items: number; bytes: number } {
    return this.#d.store.stats(w.id);
  }

  async addItem(caller: Caller, id: string, raw: unknown): Promise<{ item: ContextItemRecord; evicted: string[] }> {
    checkSchema(ContextItemSchema, raw);
    const w = this.get(caller, id);
    const session = this.#d.sessions.requireActive(caller, w.sessionId, 'contextId');
    const p = await this.prepare(caller, session, raw, '');
    const item = this.#d.store.insertItem({ ...p, id: newId('itm'), contextId: w.id, createdMs: this.#d.clock.nowMs() });
    const evicted = this.#enforce(w);
    return { item, evicted };
  }

  items(caller: Caller, id: string, limit: number, offset: number): { items: ContextItemRecord[]; total: number } {
    const w = this.get(caller, id);
    return this.#d.store.items(w.id, limit, offset);
  }

  /** Applies expiry and the size bound; returns the ids removed. */
  #enforce(w: ContextWindowRecord): string[] {
    const gone = itemsToRemove(this.#d.store.ranked(w.id), w.config.retentionPolicy, w.config.maxSize, this.#d.clock.nowMs());
    if (gone.length) this.#d.store.deleteItems(gone);
    return gone;
  }

  /** Checks one item and resolves what it refers to (reads a `file://` item); stores nothing. */
  async prepare(
    caller: Caller,
    session: SessionRecord,
    item: ContextItemInput,
    at: string,
  ): Promise<Pick<ContextItemRecord, 'type' | 'content' | 'metadata' | 'importance' | 'sizeBytes'>> {
    const field = (f: string) => (at ? `${at}.${f}` : f);
    const metadata: Record<string, unknown> = { ...(item.metadata ?? {}) };
    let content = item.content;
    if (item.type === 'url') {
      let u: URL;
      try {
        u = new URL(content);
      } catch {
        throw validationError(field('content'), 'must be an absolute http(s) URL');
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw validationError(field('content'), 'must be an absolute http(s) URL');
      if (u.username || u.password) throw validationError(field('content'), 'must not carry credentials');
    } else if (item.type === 'file') {
      const m = FILE_URL.exec(content);
      if (m) {
        const rel = m[1]!;
        const path = rel.startsWith('/') ? rel : `/workspace/${rel}`;
        const got = await this.#d.readFile(caller, session, item.metadata?.sandboxId, path);
        if (got.content.length > this.#d.config.contextItemMaxBytes) throw tooLarge(field('content'), this.#d.config.contextItemMaxBytes);
        const text = got.content.toString('utf8');
        const binary = !Buffer.from(text, 'utf8').equals(got.content) || text.includes('\u0000');
        content = binary ? got.content.toString('base64') : text;
        Object.assign(metadata, { path, sandboxId: got.sandboxId, ...(binary ? { encoding: 'base64' } : {}) });
      }
    }
    const sizeBytes = Buffer.byteLength(content);
    if (sizeBytes > this.#d.config.contextItemMaxBytes) throw tooLarge(field('content'), this.#d.config.contextItemMaxBytes);
    return { type: item.type, content, metadata, importance: importanceOf(item.metadata), sizeBytes };
  }

  #event(type: string, caller: Caller, w: ContextWindowRecord, details: Record<string, unknown>): void {
    this.#d.events.emit({
      type,
      severity: 'info',
      workspace: w.workspace,
      sessionId: w.sessionId,
      actor: caller.actor ?? null,
      details: { contextId: w.id, name: w.name, ...details },
    });
  }
}

const tooLarge = (field: string, max: number) =>
  new DirectorError('PAYLOAD_TOO_LARGE', `${field} is larger than ${max} bytes (DIRECTOR_CONTEXT_ITEM_MAX_BYTES)`, { field, limit: max });
