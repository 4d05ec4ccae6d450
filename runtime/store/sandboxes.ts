import type { Db } from '../../core/db.ts';
import { ACTIVE_STATES, canTransition, type SandboxState } from '../sandbox/states.ts';
import type { EffectiveSpec } from '../sandbox/spec.ts';
import { Where } from './where.ts';

/**
 * A sandbox record as stored. Environment values are never stored in clear: the record has their
 * names; a sandbox fitted from the pool also has them sealed (see {@link SandboxStore.setSealedEnvironment}).
 */
export interface SandboxRecord {
  id: string;
  workspace: string;
  name: string;
  image: string;
  status: SandboxState;
  reason: string | null;
  spec: StoredSpec;
  labels: Record<string, string>;
  containerId: string | null;
  networkId: string | null;
  ipAddress: string | null;
  pooled: boolean;
  poolKey: string | null;
  exitCode: number | null;
  createdMs: number;
  updatedMs: number;
  startedMs: number | null;
  deadlineMs: number | null;
  stoppedMs: number | null;
  deletedMs: number | null;
  /** Who owns it above the runtime (opaque to the runtime: it only stores, filters and reports them). */
  owner: SandboxOwner;
}

/** The orchestration records a sandbox belongs to; all null for a sandbox made outside a session. */
export interface SandboxOwner {
  sessionId: string | null;
  departmentId: string | null;
  environmentId: string | null;
}

export const NO_OWNER: SandboxOwner = Object.freeze({ sessionId: null, departmentId: null, environmentId: null });

export type StoredSpec = Omit<EffectiveSpec, 'environment'> & { environmentKeys: string[] };

export const toStoredSpec = (s: EffectiveSpec): StoredSpec => {
  const { environment, ...rest } = s;
  return { ...rest, environmentKeys: Object.keys(environment).sort() };
};

interface Row {
  id: string;
  workspace: string;
  name: string;
  image: string;
  status: string;
  reason: string | null;
  spec: string;
  labels: string;
  container_id: string | null;
  network_id: string | null;
  ip_address: string | null;
  pooled: number;
  pool_key: string | null;
  exit_code: number | null;
  created_ms: number;
  updated_ms: number;
  started_ms: number | null;
  deadline_ms: number | null;
  stopped_ms: number | null;
  deleted_ms: number | null;
  session_id: string | null;
  department_id: string | null;
  environment_id: string | null;
}

const fromRow = (r: Row): SandboxRecord => ({
  id: r.id,
  workspace: r.workspace,
  name: r.name,
  image: r.image,
  status: r.status as SandboxState,
  reason: r.reason,
  spec: JSON.parse(r.spec) as StoredSpec,
  labels: JSON.parse(r.labels) as Record<string, string>,
  containerId: r.container_id,
  networkId: r.network_id,
  ipAddress: r.ip_address,
  pooled: r.pooled === 1,
  poolKey: r.pool_key,
  exitCode: r.exit_code,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  startedMs: r.started_ms,
  deadlineMs: r.deadline_ms,
  stoppedMs: r.stopped_ms,
  deletedMs: r.deleted_ms,
  owner: { sessionId: r.session_id, departmentId: r.department_id, environmentId: r.environment_id },
});

export interface SandboxFilter {
  status?: SandboxState;
  sessionId?: string;
  departmentId?: string;
  labels?: Record<string, string>;
  limit: number;
  offset: number;
}

export type SandboxPatch = Partial<
  Pick<
    SandboxRecord,
    'reason' | 'containerId' | 'networkId' | 'ipAddress' | 'exitCode' | 'startedMs' | 'deadlineMs' | 'stoppedMs' | 'deletedMs'
  >
>;

const COLUMNS: Record<keyof SandboxPatch, string> = {
  reason: 'reason',
  containerId: 'container_id',
  networkId: 'network_id',
  ipAddress: 'ip_address',
  exitCode: 'exit_code',
  startedMs: 'started_ms',
  deadlineMs: 'deadline_ms',
  stoppedMs: 'stopped_ms',
  deletedMs: 'deleted_ms',
};

export class SandboxStore {
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  insert(r: SandboxRecord): void {
    this.db.sql
      .prepare(
        `INSERT INTO sandboxes (id, workspace, name, image, status, reason, spec, labels, container_id, network_id, ip_address, pooled, pool_key,
           exit_code, created_ms, updated_ms, started_ms, deadline_ms, stopped_ms, deleted_ms, session_id, department_id, environment_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.name,
        r.image,
        r.status,
        r.reason,
        JSON.stringify(r.spec),
        JSON.stringify(r.labels),
        r.containerId,
        r.networkId,
        r.ipAddress,
        r.pooled ? 1 : 0,
        r.poolKey,
        r.exitCode,
        r.createdMs,
        r.updatedMs,
        r.startedMs,
        r.deadlineMs,
        r.stoppedMs,
        r.deletedMs,
        r.owner.sessionId,
        r.owner.departmentId,
        r.owner.environmentId,
      );
  }

  /** Any record by id, whatever its workspace (runtime-internal use only). */
  byId(id: string): SandboxRecord | null {
    const row = this.db.sql.prepare('SELECT * FROM sandboxes WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** A record visible to `workspace`: another workspace's sandbox is indistinguishable from a missing one. */
  get(workspace: string, id: string): SandboxRecord | null {
    const row = this.db.sql
      .prepare("SELECT * FROM sandboxes WHERE id = ? AND workspace = ? AND status != 'deleted' AND pooled = 0")
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string, f: SandboxFilter): { items: SandboxRecord[]; total: number } {
    const where = ['workspace = ?', 'pooled = 0'];
    const args: (string | number)[] = [workspace];
    if (f.status) {
      where.push('status = ?');
      args.push(f.status);
    } else where.push("status != 'deleted'");
    if (f.sessionId) {
      where.push('session_id = ?');
      args.push(f.sessionId);
    }
    if (f.departmentId) {
      where.push('department_id = ?');
      args.push(f.departmentId);
    }
    for (const [k, v] of Object.entries(f.labels ?? {})) {
      where.push('json_extract(labels, ?) = ?');
      args.push(`$."${k.replace(/"/g, '')}"`, v);
    }
    const w = where.join(' AND ');
    const total = (this.db.sql.prepare(`SELECT count(*) AS n FROM sandboxes WHERE ${w}`).get(...args) as { n: number }).n;
    const rows = this.db.sql
      .prepare(`SELECT * FROM sandboxes WHERE ${w} ORDER BY created_ms DESC, id LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset) as unknown as Row[];
    return { items: rows.map(fromRow), total };
  }

  /** Records in any of the given states (all workspaces, pool included). */
  inStates(states: readonly SandboxState[]): SandboxRecord[] {
    const w = new Where().anyOf('status', states);
    const rows = this.db.sql.prepare(`SELECT * FROM sandboxes${w.sql}`).all(...w.args) as unknown as Row[];
    return rows.map(fromRow);
  }

  /** Every record a session owns that is not deleted (all states). */
  ofSession(sessionId: string): SandboxRecord[] {
    const rows = this.db.sql
      .prepare("SELECT * FROM sandboxes WHERE session_id = ? AND status != 'deleted' ORDER BY created_ms, id")
      .all(sessionId) as unknown as Row[];
    return rows.map(fromRow);
  }

  /** Every record of a department that is not deleted (all states). */
  ofDepartment(departmentId: string): SandboxRecord[] {
    const rows = this.db.sql
      .prepare("SELECT * FROM sandboxes WHERE department_id = ? AND status != 'deleted' ORDER BY created_ms, id")
      .all(departmentId) as unknown as Row[];
    return rows.map(fromRow);
  }

  countActive(): number {
    const w = new Where().anyOf('status', ACTIVE_STATES);
    return (this.db.sql.prepare(`SELECT count(*) AS n FROM sandboxes${w.sql}`).get(...w.args) as { n: number }).n;
  }

  countByState(): Record<string, number> {
    const rows = this.db.sql.prepare('SELECT status, count(*) AS n FROM sandboxes WHERE pooled = 0 GROUP BY status').all() as {
      status: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  /**
   * Moves a record to `to` if the lifecycle allows it from its current state; returns the
   * updated record, or null when the transition is not allowed (someone else moved it first).
   */
  transition(id: string, to: SandboxState, nowMs: number, patch: SandboxPatch = {}): SandboxRecord | null {
    return this.db.tx(() => {
      const cur = this.byId(id);
      if (!cur || !canTransition(cur.status, to)) return null;
      this.patch(id, nowMs, patch, to);
      return this.byId(id);
    });
  }

  /**
   * Takes a warm sandbox out of the pool for removal: `stopping`, atomically with the check that
   * it is still pooled (a claim may have handed it to a user a moment ago: then null, and it is
   * left alone). Null as well when it is already leaving or gone. One still `creating` (its
   * maker's process ended half-way) becomes `failed`.
   */
  leavePool(id: string, nowMs: number): SandboxRecord | null {
    return this.db.tx(() => {
      const cur = this.byId(id);
      const to = cur?.status === 'creating' ? 'failed' : 'stopping';
      if (!cur || !cur.pooled || !canTransition(cur.status, to)) return null;
      this.patch(id, nowMs, {}, to);
      return this.byId(id);
    });
  }

  patch(id: string, nowMs: number, patch: SandboxPatch, status?: SandboxState): void {
    const sets = ['updated_ms = ?'];
    const args: (string | number | null)[] = [nowMs];
    if (status) {
      sets.push('status = ?');
      args.push(status);
    }
    for (const [k, v] of Object.entries(patch) as [keyof SandboxPatch, string | number | null][]) {
      sets.push(`${COLUMNS[k]} = ?`);
      args.push(v);
    }
    this.db.sql.prepare(`UPDATE sandboxes SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
  }

  /**
   * The `disk` sizes (MiB) the last `n` claims of pool `poolKey` asked for, oldest first (claimed
   * records keep their pool key; ended ones count too): what a pool expects after a restart.
   */
  recentClaimDisks(poolKey: string, n: number): number[] {
    if (n <= 0) return [];
    const rows = this.db.sql
      .prepare(
        `SELECT json_extract(spec, '$.resourceLimits.disk') AS disk FROM sandboxes
         WHERE pooled = 0 AND pool_key = ? ORDER BY created_ms DESC LIMIT ?`,
      )
      .all(poolKey, n) as { disk: number | null }[];
    return rows
      .map((r) => Number(r.disk))
      .filter((d) => Number.isInteger(d) && d > 0)
      .reverse();
  }

  /**
   * Atomically takes a ready pooled sandbox of `poolKey` for a workspace, and gives the record the
   * request's spec (its limits may differ from the pool's: the caller fits the container to them
   * before handing it out). The oldest is taken, except that one made with the `disk` size asked
   * for (its tmpfs mounts already have the request's size) comes first; with `diskOnly` only such
   * a one is taken. Returns the claimed record and the disk size (MiB) its container was made with.
   */
  claimPooled(
    poolKey: string,
    workspace: string,
    spec: StoredSpec,
    nowMs: number,
    deadlineMs: number,
    owner: SandboxOwner = NO_OWNER,
    opts: { diskOnly?: boolean } = {},
  ): { record: SandboxRecord; madeWithDisk: number } | null {
    const disk = spec.resourceLimits.disk;
    return this.db.tx(() => {
      const pick = this.db.sql
        .prepare(
          `SELECT id, json_extract(spec, '$.resourceLimits.disk') AS disk FROM sandboxes
           WHERE pooled = 1 AND pool_key = ? AND status = 'running'${opts.diskOnly ? " AND json_extract(spec, '$.resourceLimits.disk') = ?" : ''}
           ORDER BY (json_extract(spec, '$.resourceLimits.disk') = ?) DESC, created_ms LIMIT 1`,
        )
        .get(...(opts.diskOnly ? [poolKey, disk, disk] : [poolKey, disk])) as { id: string; disk: number } | undefined;
      if (!pick) return null;
      const row = this.db.sql
        .prepare(
          `UPDATE sandboxes SET pooled = 0, workspace = ?, name = ?, labels = ?, updated_ms = ?, created_ms = ?, deadline_ms = ?,
             session_id = ?, department_id = ?, environment_id = ?, spec = ?
           WHERE id = ? AND pooled = 1
           RETURNING *`,
        )
        .get(
          workspace,
          spec.name,
          JSON.stringify(spec.labels),
          nowMs,
          nowMs,
          deadlineMs,
          owner.sessionId,
          owner.departmentId,
          owner.environmentId,
          JSON.stringify(spec),
          pick.id,
        ) as Row | undefined;
      return row ? { record: fromRow(row), madeWithDisk: Number(pick.disk) } : null;
    });
  }

  /**
   * Keeps the sealed environment of a sandbox whose container does not carry it (one fitted
   * from the warm pool). Sealed by the caller: environment values never reach the store in clear.
   */
  setSealedEnvironment(id: string, sealed: string): void {
    this.db.sql.prepare('UPDATE sandboxes SET env_sealed = ? WHERE id = ?').run(sealed, id);
  }

  /** The sealed environment kept by {@link setSealedEnvironment}; null when the container carries its own. */
  sealedEnvironment(id: string): string | null {
    const row = this.db.sql.prepare('SELECT env_sealed FROM sandboxes WHERE id = ?').get(id) as { env_sealed: string | null } | undefined;
    return row?.env_sealed ?? null;
  }

  /** Active sandboxes that are not warm ones (users' sandboxes, claimed ones included). */
  countActiveUsers(): number {
    return (
      this.db.sql.prepare("SELECT count(*) AS n FROM sandboxes WHERE pooled = 0 AND status IN ('creating','running','stopping')").get() as {
        n: number;
      }
    ).n;
  }

  /** The ready warm sandboxes, oldest first (for making room for a user's create). */
  readyPooled(): SandboxRecord[] {
    return (
      this.db.sql.prepare("SELECT * FROM sandboxes WHERE pooled = 1 AND status = 'running' ORDER BY created_ms").all() as unknown as Row[]
    ).map(fromRow);
  }

  /** Warm sandboxes (being made or ready) of one image, whatever their pool key. */
  countPooledImage(image: string): number {
    return (
      this.db.sql
        .prepare("SELECT count(*) AS n FROM sandboxes WHERE pooled = 1 AND image = ? AND status IN ('creating','running')")
        .get(image) as { n: number }
    ).n;
  }

  countPooled(poolKey: string): number {
    return (
      this.db.sql
        .prepare("SELECT count(*) AS n FROM sandboxes WHERE pooled = 1 AND pool_key = ? AND status IN ('creating','running')")
        .get(poolKey) as { n: number }
    ).n;
  }
}
