import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';
import { conflict, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Executor } from '../../runtime/sandbox/execute.ts';
import type { Caller, SandboxManager } from '../../runtime/sandbox/manager.ts';
import { MountSync } from '../../runtime/sandbox/mount-sync.ts';
import type { ContextStore } from '../context/store.ts';
import type { DepartmentStore } from '../departments/store.ts';
import type { SessionService } from '../sessions/service.ts';
import { isOpen } from '../sessions/states.ts';
import type { SessionRecord, SessionStore } from '../sessions/store.ts';
import { BlobStore } from './blobs.ts';
import { ManifestCache } from './manifest-cache.ts';
import { captureSandbox, type Budget } from './capture.ts';
import { restoreFiles, type FilesRestore, type RestoredSandbox, type SandboxCreator } from './restore-files.ts';
import { CreateCheckpointCheck, RestoreCheckpointCheck } from './schemas.ts';
import { SessionStates } from './state.ts';
import { CheckpointStore, type CheckpointRecord, type CheckpointSummary, type SandboxCapture } from './store.ts';
import { notFoundFor } from '../../runtime/not-found.ts';

/**
 * A session's messages, as a checkpoint keeps them. Chat plugs in here when it exists; until
 * then a checkpoint holds an empty list and a restore has none to put back.
 */
export interface MessageSnapshots {
  snapshot(sessionId: string): unknown[] | Promise<unknown[]>;
  restore(sessionId: string, messages: readonly unknown[]): void | Promise<void>;
}

export interface CheckpointServiceDeps {
  store: CheckpointStore;
  blobs: BlobStore;
  sessions: SessionService;
  states: SessionStates;
  context: ContextStore;
  messages?: MessageSnapshots;
  sandboxes: SandboxManager;
  mounts: MountSync;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  config: Pick<Config, 'checkpointMaxPerSession' | 'checkpointMaxBytes' | 'checkpointTimeoutMs'>;
  /** Makes a sandbox that a restore recreates; default: the sandbox manager's create with the recorded owner. */
  createSandbox?: SandboxCreator;
}

/** Entries one mount may hold (listing and archive). */
export const MAX_ENTRIES_PER_MOUNT = 200_000;

/**
 * Internal narrowing of a create or restore (not part of the API): only the files of the named
 * sandboxes of the session are captured or put back. Workflows use it so a run's checkpoint holds
 * its own sandbox and its rollback touches nothing else of the session.
 */
export interface SandboxScope {
  /** The sandboxes whose files are captured or restored; the session's others are left alone. */
  sandboxIds?: readonly string[];
  /** Restore: fail (409) instead of recreating a named sandbox that no longer runs. */
  inPlace?: boolean;
}

export interface RestoreResult {
  checkpointId: string;
  sessionId: string;
  restored: { state: boolean; context: boolean; messages: boolean; files: boolean };
  sandboxes: RestoredSandbox[];
}

/**
 * Checkpoints of a session: create (the seed's `data`, the session's state, its context windows,
 * its messages and the files of its sandboxes, under one `ckp_` id), list, read, delete, and
 * restore what a client asks for. Files are stored by content under the data dir (`blobs.ts`),
 * so what did not change costs nothing twice. A session's terminated end removes its checkpoints
 * and the blobs only they used; completed and expired sessions keep theirs.
 *
 * Creates and restores of one session run one at a time (a restore never sees a half-made
 * checkpoint of its session, and two restores never interleave in a sandbox).
 */
export class CheckpointService {
  readonly #d: CheckpointServiceDeps;
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #manifests = new ManifestCache();

  constructor(deps: CheckpointServiceDeps) {
    this.#d = deps;
    deps.sessions.onEnd({
      name: 'checkpoints',
      phase: 2,
      end: async (s, to) => {
        if (to === 'terminated') await this.#serial(s.id, async () => this.#deleteOfSession(s.id));
      },
    });
  }

  /** Prepares the blob directories and removes what a crash left half-stored. Call before serving. */
  async start(): Promise<void> {
    const { removed } = await this.#d.blobs.start(this.#d.store.allDigests());
    if (removed) this.#d.logger.info({ removed }, 'checkpoints: removed blobs no checkpoint refers to');
  }

  async create(caller: Caller, raw: unknown, scope: SandboxScope = {}): Promise<CheckpointRecord> {
    checkSchema(CreateCheckpointCheck, raw);
    const session = this.#openSession(caller, raw.sessionId);
    const only = scope.sandboxIds ? new Set(scope.sandboxIds) : null;
    const { config: cfg, store, blobs } = this.#d;
    return this.#serial(session.id, async () => {
      this.#checkCount(session.id);
      // Content is shared within the caller's workspace only (see contentKey).
      const batch = blobs.batch(caller.workspace);
      let committed: string | null = null;
      try {
        const budget: Budget = { maxBytes: cfg.checkpointMaxBytes, used: 0 };
        const files: SandboxCapture[] = [];
        const deps = {
          mounts: this.#d.mounts,
          blobs,
          manifests: this.#manifests,
          store,
          maxEntries: MAX_ENTRIES_PER_MOUNT,
          timeoutMs: cfg.checkpointTimeoutMs,
        };
        const recs = this.#d.sandboxes.deps.store.ofSession(session.id).filter((r) => !only || only.has(r.id));
        for (const id of only ?? []) {
          if (!recs.some((r) => r.id === id)) throw conflict(`sandbox ${id} is not a sandbox of session ${session.id}`, { sandboxId: id });
        }
        for (const rec of recs) files.push(await captureSandbox(deps, session.id, rec, batch, budget));
        await batch.flush();
        // The session may have ended while its files were read: then nothing is stored.
        const now = this.#openSession(caller, session.id);
        const rec: CheckpointRecord = {
          id: newId('ckp'),
          workspace: caller.workspace,
          sessionId: session.id,
          name: raw.name,
          description: raw.description ?? '',
          data: raw.data ?? {},
          state: this.#d.states.snapshot(now),
          context: this.#d.context.snapshot(session.id),
          messages: [...((await this.#d.messages?.snapshot(session.id)) ?? [])],
          files,
          bytes: budget.used,
          fileCount: files.reduce((n, s) => n + s.mounts.reduce((m, x) => m + x.files, 0), 0),
          createdBy: caller.actor ?? null,
          createdMs: this.#d.clock.nowMs(),
        };
        if (!store.insertBounded(rec, batch.digests, cfg.checkpointMaxPerSession, () => batch.insertPending()))
          this.#checkCount(session.id, true);
        committed = rec.id;
        this.#event('checkpoint_created', caller, rec, {
          files: rec.fileCount,
          bytes: rec.bytes,
          storedBytes: batch.newBytes,
          sandboxes: files.length,
        });
        return rec;
      } finally {
        // Committed: its blobs are referenced and stay (no lookup while it exists). Refused or failed: what it wrote goes.
        await batch.release(() => committed !== null && store.exists(committed));
      }
    });
  }

  get(caller: Caller, id: string): CheckpointSummary {
    const s = this.#d.store.summary(caller.workspace, id);
    if (!s) throw this.#notFound(caller, id);
    return s;
  }

  list(caller: Caller, f: { sessionId?: string; limit: number; offset: number }): { items: CheckpointSummary[]; total: number } {
    return this.#d.store.list(caller.workspace, f);
  }

  /** Removes a checkpoint and the blobs nothing else refers to. */
  delete(caller: Caller, id: string): void {
    if (this.#d.store.workspaceOf(id) !== caller.workspace) throw this.#notFound(caller, id);
    const digests = this.#d.store.delete([id]);
    const removed = this.#d.blobs.collect(digests);
    this.#d.events.emit({
      type: 'checkpoint_deleted',
      severity: 'info',
      workspace: caller.workspace,
      actor: caller.actor ?? null,
      details: { checkpointId: id, blobsRemoved: removed },
    });
  }

  /**
   * Puts back what the body asks for (every part by default). Files first: each sandbox's mounts
   * are swapped in, undoably; then messages, then state and context in one transaction; only then
   * are the swaps made final. A failure anywhere leaves the sandboxes' files as they were.
   */
  async restore(caller: Caller, id: string, raw: unknown, scope: SandboxScope = {}): Promise<RestoreResult> {
    const body = raw ?? {};
    checkSchema(RestoreCheckpointCheck, body);
    const stored = this.#d.store.get(caller.workspace, id);
    if (!stored) throw this.#notFound(caller, id);
    let ckp = stored;
    if (scope.sandboxIds) {
      const only = new Set(scope.sandboxIds);
      for (const sid of only) {
        if (!stored.files.some((s) => s.sandboxId === sid))
          throw conflict(`checkpoint ${id} holds no files of sandbox ${sid}`, { checkpointId: id, sandboxId: sid });
      }
      ckp = { ...stored, files: stored.files.filter((s) => only.has(s.sandboxId)) };
    }
    const session = this.#d.sessions.get(caller, ckp.sessionId);
    if (session.status !== 'active')
      throw conflict(`session ${session.id} is ${session.status}: a restore needs an active session`, { status: session.status });
    const want = {
      state: body.includeState ?? true,
      context: body.includeContext ?? true,
      messages: (body.includeMessages ?? true) && this.#d.messages !== undefined,
      files: (body.includeFiles ?? true) && ckp.files.some((s) => s.mounts.length > 0),
    };
    return this.#serial(session.id, async () => {
      // Deleted while the restore waited for the session's turn: its blobs may be gone already.
      if (!this.#d.store.exists(ckp.id)) throw this.#notFound(caller, id);
      const pins = this.#d.blobs.batch();
      // The blobs it refers to now (this same synchronous step) are present; pinned, they stay even if it is deleted meanwhile.
      pins.reuseReferencedGroup(this.#d.store.digestsOf(ckp.id));
      try {
        let files: FilesRestore | null = null;
        if (want.files) files = await restoreFiles(this.#filesDeps(), caller, ckp, !want.messages, scope.inPlace ?? false);
        try {
          if (want.messages) await this.#d.messages!.restore(session.id, ckp.messages);
          if (want.state || want.context) {
            const nowMs = this.#d.clock.nowMs();
            this.#d.context.tx(() => {
              if (want.state) this.#d.states.restore(session, ckp.state, nowMs);
              if (want.context) this.#d.context.restore(session.id, ckp.context, nowMs);
            });
          }
        } catch (err) {
          await files?.undo();
          throw err;
        }
        await files?.commit();
        const result: RestoreResult = { checkpointId: ckp.id, sessionId: session.id, restored: want, sandboxes: files?.sandboxes ?? [] };
        this.#event('checkpoint_restored', caller, ckp, {
          restored: want,
          sandboxes: result.sandboxes.map((s) => ({ from: s.checkpointSandboxId, to: s.sandboxId, recreated: s.recreated })),
        });
        return result;
      } finally {
        // Every pin is a blob of the checkpoint: while it exists (checked in the same step) none is looked up.
        await pins.release(() => this.#d.store.exists(ckp.id));
      }
    });
  }

  #filesDeps() {
    const m = this.#d.sandboxes;
    return {
      mounts: this.#d.mounts,
      blobs: this.#d.blobs,
      manifests: this.#manifests,
      sandboxes: m.deps.store,
      createSandbox: this.#d.createSandbox ?? ((caller, request, owner) => m.create(request, caller, { owner })),
      deleteSandbox: (rec) => m.deps.teardown.destroy(rec, 'checkpoint restore failed'),
      logger: this.#d.logger,
      maxEntries: MAX_ENTRIES_PER_MOUNT,
      timeoutMs: this.#d.config.checkpointTimeoutMs,
    } satisfies Parameters<typeof restoreFiles>[0];
  }

  #deleteOfSession(sessionId: string): void {
    const ids = this.#d.store.idsOfSession(sessionId);
    if (!ids.length) return;
    this.#d.blobs.collect(this.#d.store.delete(ids));
  }

  /** A session a checkpoint can be taken of: the caller's, open (active or paused). */
  #openSession(caller: Caller, id: string): SessionRecord {
    let s: SessionRecord;
    try {
      s = this.#d.sessions.get(caller, id);
    } catch (err) {
      throw validationError('sessionId', `no session ${id} in this workspace`, { cause: (err as Error).message });
    }
    if (!isOpen(s.status))
      throw conflict(`session ${id} is ${s.status}: checkpoints are taken of open sessions`, { field: 'sessionId', status: s.status });
    return s;
  }

  #checkCount(sessionId: string, full = false): void {
    const max = this.#d.config.checkpointMaxPerSession;
    if (full || this.#d.store.countOf(sessionId) >= max)
      throw conflict(
        `session ${sessionId} keeps its maximum of ${max} checkpoints (DIRECTOR_CHECKPOINT_MAX_PER_SESSION); delete one to make another`,
        { field: 'sessionId', limit: max, setting: 'DIRECTOR_CHECKPOINT_MAX_PER_SESSION' },
      );
  }

  #notFound(caller: Caller, id: string): Error {
    return notFoundFor(this.#d.events, caller, 'checkpoint', id, this.#d.store.workspaceOf(id));
  }

  #event(type: string, caller: Caller, ckp: CheckpointRecord, details: Record<string, unknown>): void {
    this.#d.events.emit({
      type,
      severity: 'info',
      workspace: ckp.workspace,
      sessionId: ckp.sessionId,
      actor: caller.actor ?? null,
      details: { checkpointId: ckp.id, name: ckp.name, ...details },
    });
  }

  /** Runs `fn` after every earlier call for the same key has settled. */
  #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(key) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(key, tail);
    void tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return run;
  }
}

/** What the composition root has at hand to build the service. */
export interface CheckpointWiring {
  runtime: { config: Config; db: Db; clock: Clock; logger: Logger; events: EventSink; sandboxes: SandboxManager; executor: Executor };
  sessions: SessionService;
  sessionStore: SessionStore;
  departmentStore: DepartmentStore;
  contextStore: ContextStore;
  messages?: MessageSnapshots;
  createSandbox?: SandboxCreator;
}

/** Builds the service with its store, blob store (`<dataDir>/checkpoints`) and mount reader. Call `start()` before serving. */
export function createCheckpointService(w: CheckpointWiring): CheckpointService {
  const { runtime: rt } = w;
  const store = new CheckpointStore(rt.db);
  return new CheckpointService({
    store,
    blobs: new BlobStore(path.join(rt.config.dataDir, 'checkpoints'), rt.db, (digests) => store.referenced(digests)),
    sessions: w.sessions,
    states: new SessionStates(rt.db, w.sessionStore, w.departmentStore),
    context: w.contextStore,
    ...(w.messages ? { messages: w.messages } : {}),
    sandboxes: rt.sandboxes,
    mounts: new MountSync((containerId, cmd, opts) => rt.executor.open(containerId, cmd, opts), {
      ...(rt.sandboxes.deps.engine.local ? { kernelClockMs: () => Date.now() } : {}),
      treeTool: (containerId) => rt.executor.agentBinaryIn(containerId),
    }),
    events: rt.events,
    clock: rt.clock,
    logger: rt.logger.child({ component: 'checkpoints' }),
    config: rt.config,
    ...(w.createSandbox ? { createSandbox: w.createSandbox } : {}),
  });
}
