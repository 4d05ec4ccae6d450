import { Readable } from 'node:stream';
import { Type } from 'typebox';
import type { Logger } from 'pino';
import { validationError } from '../core/errors.ts';
import type { LimitCeiling } from '../policies/limits.ts';
import type { Caller, SandboxManager } from '../runtime/sandbox/manager.ts';
import { CreateSandboxSchema } from '../runtime/sandbox/spec.ts';
import type { FileTransfer } from '../runtime/sandbox/transfer.ts';
import type { SandboxFilter, SandboxRecord, SandboxStore } from '../runtime/store/sandboxes.ts';
import { sessionCeiling, type DepartmentService } from './departments/service.ts';
import type { EndState, SessionService } from './sessions/service.ts';
import type { SessionRecord } from './sessions/store.ts';

/** What a sandbox made from an environment gets (see `orchestration/environments/`). */
export interface EnvironmentForSandbox {
  id: string;
  image: string;
  /** Values in memory only (secrets decrypted): they reach the sandbox as its environment and nowhere else. */
  variables: Record<string, string>;
  ceiling: LimitCeiling | null;
  networkPolicy: unknown;
  files: { path: string; content: string | Buffer; mode?: number }[];
}

export interface EnvironmentSource {
  /** Throws a 400 naming `field` when the environment does not exist in the caller's workspace. */
  forSandbox(caller: Caller, environmentId: string, field: string): EnvironmentForSandbox;
}

export interface SessionSandboxesDeps {
  sandboxes: SandboxManager;
  store: SandboxStore;
  files: FileTransfer;
  sessions: SessionService;
  departments: DepartmentService;
  environments?: EnvironmentSource;
  logger: Logger;
}

/** `POST /v1/sandboxes` as the API takes it: the runtime's fields and the owners the orchestration layer reads. */
export const CreateOwnedSandboxSchema = Type.Object(
  {
    ...CreateSandboxSchema.properties,
    sessionId: Type.Optional(
      Type.String({
        pattern: '^ses_[A-Za-z0-9_-]{16}$',
        description: 'The session that owns the sandbox (must be active); its limits are a ceiling',
      }),
    ),
    departmentId: Type.Optional(
      Type.String({
        pattern: '^dep_[A-Za-z0-9_-]{16}$',
        description: 'A department of that session (its session is implied): its limits are a ceiling the request can only narrow',
      }),
    ),
    environmentId: Type.Optional(
      Type.String({
        pattern: '^env_[A-Za-z0-9_-]{16}$',
        description:
          "An environment: its image, variables (secrets included, as the sandbox's environment only), limits (as a ceiling), network policy (for the sandbox's private network) and files",
      }),
    ),
  },
  { additionalProperties: false },
);

/** The fields of `POST /v1/sandboxes` that the orchestration layer reads (the runtime never sees them). */
const OWNER_FIELDS = ['sessionId', 'departmentId', 'environmentId'] as const;

/**
 * Sandboxes made inside a session: `POST /v1/sandboxes` with `sessionId`, `departmentId` or
 * `environmentId`. The session must be active; the department's and session's limits are
 * ceilings the request can only narrow; the environment supplies the image, variables, a
 * ceiling, the private network's policy and files. The runtime then creates the sandbox as
 * usual (same hardening, same pool) and records who owns it. A create that fails after the
 * container exists (placing the environment's files) removes it again: nothing half-made stays.
 *
 * Precedence where both say something: the request's own fields win over the environment's
 * (image, variables), which win over the session's defaults (`config.environmentId`,
 * `config.networkId`); limits only ever narrow.
 */
export class SessionSandboxes {
  readonly #d: SessionSandboxesDeps;
  constructor(deps: SessionSandboxesDeps) {
    this.#d = deps;
  }

  /** {@link ofSession} for a session of the caller's workspace (404 for an unknown session or another workspace's). */
  ofCallersSession(caller: Caller, sessionId: string): SandboxRecord[] {
    return this.ofSession(this.#d.sessions.get(caller, sessionId).id);
  }

  async create(caller: Caller, raw: unknown): Promise<SandboxRecord> {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return this.#d.sandboxes.create(raw, caller);
    const body = { ...(raw as Record<string, unknown>) };
    const refs: Partial<Record<(typeof OWNER_FIELDS)[number], string>> = {};
    for (const f of OWNER_FIELDS) {
      const v = body[f];
      delete body[f];
      if (v === undefined) continue;
      if (typeof v !== 'string') throw validationError(f, 'must be a string id');
      refs[f] = v;
    }
    if (!refs.sessionId && !refs.departmentId && !refs.environmentId) return this.#d.sandboxes.create(raw, caller);

    let session: SessionRecord | null = null;
    let ceilings: LimitCeiling[] = [];
    let departmentId: string | null = null;
    if (refs.departmentId && !refs.sessionId) {
      // A department names its session.
      const dep = this.#d.departments.get(caller, refs.departmentId);
      refs.sessionId = dep.sessionId;
    }
    if (refs.sessionId) {
      session = this.#d.sessions.requireActive(caller, refs.sessionId);
      if (refs.departmentId) {
        const got = this.#d.departments.ceilingsFor(caller, refs.departmentId, session);
        ceilings = got.ceilings;
        departmentId = got.dep.id;
      } else ceilings = sessionCeiling(session);
    }
    const environmentId = refs.environmentId ?? session?.config.environmentId;
    let env: EnvironmentForSandbox | null = null;
    if (environmentId) {
      if (!this.#d.environments) throw validationError('environmentId', 'environments are not available on this instance');
      env = this.#d.environments.forSandbox(caller, environmentId, refs.environmentId ? 'environmentId' : 'session.config.environmentId');
      if (env.ceiling) ceilings = [...ceilings, env.ceiling];
      if (body.image === undefined) body.image = env.image;
      body.environment = { ...env.variables, ...(body.environment ?? {}) };
      if (env.networkPolicy) {
        const sp = { ...((body.securityPolicy as Record<string, unknown> | undefined) ?? {}) };
        if (sp.allowNetwork === undefined) sp.allowNetwork = true;
        body.securityPolicy = sp;
      }
    }
    if (session?.config.networkId && body.networkMode === undefined) body.networkMode = session.config.networkId;

    const rec = await this.#d.sandboxes.create(body, caller, {
      limitCeilings: ceilings,
      owner: { sessionId: session?.id ?? null, departmentId, environmentId: env?.id ?? null },
      ...(env?.networkPolicy && body.networkMode === undefined ? { networkPolicy: env.networkPolicy } : {}),
    });
    if (env?.files.length) {
      try {
        for (const f of env.files) {
          await this.#d.files.upload(caller, rec.id, f.path, Readable.from([Buffer.from(f.content)]), 'file');
        }
      } catch (err) {
        this.#d.logger.warn({ err, sandboxId: rec.id }, 'placing the environment files failed; removing the sandbox');
        await this.#d.sandboxes.deps.teardown.destroy(rec, 'environment files could not be placed').catch(() => undefined);
        throw err;
      }
    }
    return rec;
  }

  list(caller: Caller, f: SandboxFilter) {
    if (f.sessionId) this.#d.sessions.get(caller, f.sessionId);
    return this.#d.sandboxes.list(caller, f);
  }

  /** The session's sandboxes that exist (any state but deleted). */
  ofSession(sessionId: string): SandboxRecord[] {
    return this.#d.store.ofSession(sessionId);
  }

  /** Phase 1 of a session's end: completed or expired stop its sandboxes; terminated removes them. */
  async endSession(session: SessionRecord, to: EndState): Promise<void> {
    const reason = `session ${session.id} ${to}`;
    for (const rec of this.#d.store.ofSession(session.id)) {
      if (to === 'terminated') await this.#d.sandboxes.deps.teardown.destroy(rec, reason);
      else if (rec.status === 'running') await this.#d.sandboxes.deps.teardown.stop(rec, reason, 2);
    }
  }
}
