import type { Clock } from '../../core/clock.ts';
import { isUniqueViolation } from '../../core/db.ts';
import { DirectorError, conflict, notFound, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { SecretBox } from '../../core/secrets.ts';
import type { NamedSecret } from './redact.ts';
import { RotateSecretSchema, StoreSecretSchema, UpdateSecretSchema } from './schemas.ts';
import type { SecretRecord, VaultStore } from './store.ts';

/** What the vault needs of the secrets box: seal and open, bound to additional data. */
export type SecretSealer = Pick<SecretBox, 'seal' | 'open'>;

export interface VaultServiceDeps {
  store: VaultStore;
  secrets: SecretSealer;
  events: EventSink;
  clock: Clock;
}

/** What the API shows of an entry: never the value. */
export interface SecretView {
  id: string;
  name: string;
  description: string;
  version: number;
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
  rotatedMs: number | null;
}

/** The additional data a value is sealed with: a sealed value copied to another entry does not open there. */
const aadOf = (id: string) => `vault:${id}`;

/**
 * The credential vault: secrets sealed at rest (AES-256-GCM through the secrets box), never
 * returned after they are stored, and handed out only in clear to the code that injects them
 * into a sandbox's tool executions ({@link resolve}), where an agent binds them. Every change is
 * an event (`vault_secret_*`) naming the entry, never its value.
 */
export class VaultService {
  readonly #d: VaultServiceDeps;
  constructor(deps: VaultServiceDeps) {
    this.#d = deps;
  }

  static view(r: SecretRecord): SecretView {
    return {
      id: r.id,
      name: r.name,
      description: r.description,
      version: r.version,
      createdBy: r.createdBy,
      createdMs: r.createdMs,
      updatedMs: r.updatedMs,
      rotatedMs: r.rotatedMs,
    };
  }

  list(caller: Caller, f: { limit: number; offset: number }): { items: SecretRecord[]; total: number } {
    return this.#d.store.list(caller.workspace, f);
  }

  get(caller: Caller, id: string): SecretRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) {
      const other = this.#d.store.byId(id);
      if (other && other.workspace !== caller.workspace && other.deletedMs === null) {
        this.#d.events.emit({
          type: 'cross_workspace_attempt',
          severity: 'high',
          workspace: caller.workspace,
          actor: caller.actor ?? null,
          details: { resource: 'vault_secret', id },
        });
      }
      throw notFound('vault secret', id);
    }
    return rec;
  }

  store(caller: Caller, raw: unknown): SecretRecord {
    checkSchema(StoreSecretSchema, raw);
    const now = this.#d.clock.nowMs();
    const id = newId('vlt');
    const rec: SecretRecord = {
      id,
      workspace: caller.workspace,
      name: raw.name,
      description: raw.description ?? '',
      sealed: this.#d.secrets.seal(raw.value, aadOf(id)),
      version: 1,
      createdBy: caller.actor ?? null,
      createdMs: now,
      updatedMs: now,
      rotatedMs: null,
      deletedMs: null,
    };
    try {
      this.#d.store.insert(rec);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`a vault secret named ${raw.name} exists in this workspace`, { field: 'name' });
      throw err;
    }
    this.#event('vault_secret_created', 'low', caller, rec);
    return rec;
  }

  /** Name and description; a `value` is a rotation. */
  update(caller: Caller, id: string, raw: unknown): SecretRecord {
    checkSchema(UpdateSecretSchema, raw);
    const cur = this.get(caller, id);
    if (raw.name !== undefined || raw.description !== undefined) {
      try {
        this.#d.store.rename(id, this.#d.clock.nowMs(), raw.name ?? cur.name, raw.description ?? cur.description);
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict(`a vault secret named ${raw.name} exists in this workspace`, { field: 'name' });
        throw err;
      }
      this.#event('vault_secret_updated', 'low', caller, this.#d.store.byId(id)!);
    }
    if (raw.value !== undefined) return this.rotate(caller, id, { value: raw.value });
    return this.#d.store.byId(id)!;
  }

  rotate(caller: Caller, id: string, raw: unknown): SecretRecord {
    checkSchema(RotateSecretSchema, raw);
    const cur = this.get(caller, id);
    this.#d.store.rotate(id, this.#d.clock.nowMs(), this.#d.secrets.seal(raw.value, aadOf(id)), cur.version + 1);
    const rec = this.#d.store.byId(id)!;
    this.#event('vault_secret_rotated', 'medium', caller, rec);
    return rec;
  }

  delete(caller: Caller, id: string): void {
    const rec = this.get(caller, id);
    this.#d.store.markDeleted(id, this.#d.clock.nowMs());
    this.#event('vault_secret_deleted', 'medium', caller, rec);
  }

  /** Throws a 400 naming `field` unless every id is a live entry of the workspace (for bindings made at agent create). */
  checkIds(workspace: string, ids: Record<string, string>, field: string): void {
    for (const [name, id] of Object.entries(ids)) {
      if (!this.#d.store.get(workspace, id)) throw validationError(`${field}.${name}`, `no vault secret ${id} in this workspace`);
    }
  }

  /**
   * The values of bound secrets, in clear, for one piece of work: `bindings` maps the name a
   * secret is injected as (an environment variable) to its entry id. An entry deleted since it
   * was bound, or one that no longer opens, is refused (409): the work must not run without it.
   */
  resolve(workspace: string, bindings: Record<string, string>): { env: Record<string, string>; secrets: NamedSecret[] } {
    const env: Record<string, string> = {};
    const secrets: NamedSecret[] = [];
    for (const [as, id] of Object.entries(bindings)) {
      const rec = this.#d.store.get(workspace, id);
      if (!rec?.sealed) throw conflict(`vault secret ${id} (bound as ${as}) no longer exists`, { secretId: id, binding: as });
      let value: string;
      try {
        value = this.#d.secrets.open(rec.sealed, aadOf(rec.id));
      } catch (err) {
        throw new DirectorError(
          'CONFLICT',
          `vault secret ${id} cannot be opened with this instance's key`,
          { secretId: id },
          { cause: err },
        );
      }
      env[as] = value;
      secrets.push({ name: rec.name, value });
    }
    return { env, secrets };
  }

  #event(type: string, severity: 'low' | 'medium', caller: Caller, rec: SecretRecord): void {
    this.#d.events.emit({
      type,
      severity,
      workspace: rec.workspace,
      actor: caller.actor ?? null,
      details: { secretId: rec.id, name: rec.name, version: rec.version },
    });
  }
}
