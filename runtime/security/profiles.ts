import type { Clock } from '../../core/clock.ts';
import { DirectorError, conflict, notFound, validationError } from '../../core/errors.ts';
import type { EventSink } from '../events.ts';
import { newId } from '../../core/ids.ts';
import type { Db } from '../../core/db.ts';
import type { ProfileCeilings } from '../sandbox/manager.ts';
import type { BuiltinProfile, Ceiling, ProfileBody, ProfileConstraints, ProfileLevel, ProfilePatch } from '../../policies/profiles.ts';

/**
 * Security profiles as stored: a workspace's own profiles in `security_profiles`, plus the
 * shipped built-ins (`policies/profiles/*.json`), which are global — visible to every workspace,
 * read-only, never stored, with ids derived from their names so they survive restarts. A
 * workspace may name one profile as its default (`security_workspace_profiles`): the outermost
 * ceiling of every sandbox it creates.
 */
export interface SecurityProfile {
  id: string;
  /** null for a built-in (global) profile. */
  workspace: string | null;
  name: string;
  description: string;
  level: ProfileLevel;
  constraints: ProfileConstraints;
  builtin: boolean;
  createdMs: number;
  updatedMs: number;
}

interface Row {
  id: string;
  workspace: string;
  name: string;
  description: string;
  level: string;
  constraints: string;
  created_ms: number;
  updated_ms: number;
}

const fromRow = (r: Row): SecurityProfile => ({
  id: r.id,
  workspace: r.workspace,
  name: r.name,
  description: r.description,
  level: r.level as ProfileLevel,
  constraints: JSON.parse(r.constraints) as ProfileConstraints,
  builtin: false,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
});

const readOnly = (p: SecurityProfile) =>
  new DirectorError('AUTHORIZATION_ERROR', `profile ${p.name} is a built-in and cannot be changed; create your own from it`, {
    id: p.id,
    reason: 'builtin_read_only',
  });

export interface Actor {
  workspace: string;
  actor?: string;
}

export class ProfileService implements ProfileCeilings {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #events: EventSink;
  readonly #builtins: SecurityProfile[];

  constructor(db: Db, clock: Clock, events: EventSink, builtins: readonly BuiltinProfile[]) {
    this.#db = db;
    this.#clock = clock;
    this.#events = events;
    this.#builtins = builtins.map((b) => ({ ...b, workspace: null, builtin: true, createdMs: 0, updatedMs: 0 }));
  }

  /** Built-ins first (file order), then the workspace's own, oldest first. */
  list(workspace: string): SecurityProfile[] {
    const rows = this.#db.sql
      .prepare('SELECT * FROM security_profiles WHERE workspace = ? ORDER BY created_ms, rowid')
      .all(workspace) as unknown as Row[];
    return [...this.#builtins, ...rows.map(fromRow)];
  }

  /** A profile the workspace can see; another workspace's profile is indistinguishable from a missing one. */
  find(workspace: string, id: string): SecurityProfile | null {
    const builtin = this.#builtins.find((b) => b.id === id);
    if (builtin) return builtin;
    const row = this.#db.sql.prepare('SELECT * FROM security_profiles WHERE id = ? AND workspace = ?').get(id, workspace) as
      Row | undefined;
    return row ? fromRow(row) : null;
  }

  get(workspace: string, id: string): SecurityProfile {
    const p = this.find(workspace, id);
    if (!p) throw notFound('security profile', id);
    return p;
  }

  create(caller: Actor, body: ProfileBody): SecurityProfile {
    this.#checkName(caller.workspace, body.name, null);
    const now = this.#clock.nowMs();
    const p: SecurityProfile = {
      id: newId('prf'),
      workspace: caller.workspace,
      name: body.name,
      description: body.description ?? '',
      level: body.level,
      constraints: body.constraints,
      builtin: false,
      createdMs: now,
      updatedMs: now,
    };
    this.#db.sql
      .prepare(
        'INSERT INTO security_profiles (id, workspace, name, description, level, constraints, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(p.id, caller.workspace, p.name, p.description, p.level, JSON.stringify(p.constraints), now, now);
    this.#event('profile_created', caller, p);
    return p;
  }

  /** PUT replaces every field; PATCH (`merge`) changes the given ones, constraints key by key. */
  update(caller: Actor, id: string, body: ProfileBody | ProfilePatch, mode: 'replace' | 'merge'): SecurityProfile {
    return this.#db.tx(() => {
      const cur = this.get(caller.workspace, id);
      if (cur.builtin) throw readOnly(cur);
      const full = body as ProfileBody;
      const next: SecurityProfile =
        mode === 'replace'
          ? { ...cur, name: full.name, description: full.description ?? '', level: full.level, constraints: full.constraints }
          : {
              ...cur,
              name: body.name ?? cur.name,
              description: body.description ?? cur.description,
              level: body.level ?? cur.level,
              constraints: { ...cur.constraints, ...body.constraints },
            };
      if (next.name.toLowerCase() !== cur.name.toLowerCase()) this.#checkName(caller.workspace, next.name, cur.id);
      next.updatedMs = this.#clock.nowMs();
      this.#db.sql
        .prepare('UPDATE security_profiles SET name = ?, description = ?, level = ?, constraints = ?, updated_ms = ? WHERE id = ?')
        .run(next.name, next.description, next.level, JSON.stringify(next.constraints), next.updatedMs, id);
      this.#event('profile_updated', caller, next);
      return next;
    });
  }

  /** Refused (409) while the profile is the workspace default; sandboxes created with it keep their limits. */
  delete(caller: Actor, id: string): void {
    this.#db.tx(() => {
      const cur = this.get(caller.workspace, id);
      if (cur.builtin) throw readOnly(cur);
      if (this.workspaceDefault(caller.workspace)?.id === id)
        throw conflict(`profile ${cur.name} is the workspace's default profile; set another default first`, { id });
      this.#db.sql.prepare('DELETE FROM security_profiles WHERE id = ?').run(id);
      this.#event('profile_deleted', caller, cur);
    });
  }

  workspaceDefault(workspace: string): SecurityProfile | null {
    const row = this.#db.sql.prepare('SELECT profile_id FROM security_workspace_profiles WHERE workspace = ?').get(workspace) as
      { profile_id: string } | undefined;
    return row ? this.find(workspace, row.profile_id) : null;
  }

  /** Sets (or with null clears) the workspace's default profile: the outermost ceiling of its sandboxes. */
  setWorkspaceDefault(caller: Actor, profileId: string | null): SecurityProfile | null {
    const p = profileId === null ? null : this.find(caller.workspace, profileId);
    if (profileId !== null && !p) throw validationError('profileId', 'no such security profile in this workspace');
    if (p) {
      this.#db.sql
        .prepare(
          'INSERT INTO security_workspace_profiles (workspace, profile_id, updated_ms) VALUES (?, ?, ?) ON CONFLICT (workspace) DO UPDATE SET profile_id = excluded.profile_id, updated_ms = excluded.updated_ms',
        )
        .run(caller.workspace, p.id, this.#clock.nowMs());
    } else this.#db.sql.prepare('DELETE FROM security_workspace_profiles WHERE workspace = ?').run(caller.workspace);
    this.#events.emit({
      type: 'workspace_profile_set',
      severity: 'info',
      workspace: caller.workspace,
      actor: caller.actor ?? null,
      details: { profileId: p?.id ?? null, name: p?.name ?? null },
    });
    return p;
  }

  ceilingsFor(workspace: string, profileId: string | undefined): Ceiling[] {
    const out: Ceiling[] = [];
    const ws = this.workspaceDefault(workspace);
    if (ws) out.push({ level: 'workspace', id: ws.id, name: ws.name, constraints: ws.constraints });
    if (profileId !== undefined) {
      const p = this.find(workspace, profileId);
      if (!p) throw validationError('profileId', 'no such security profile in this workspace');
      out.push({ level: 'profile', id: p.id, name: p.name, constraints: p.constraints });
    }
    return out;
  }

  #checkName(workspace: string, name: string, exceptId: string | null): void {
    const lower = name.toLowerCase();
    if (this.#builtins.some((b) => b.name.toLowerCase() === lower))
      throw conflict(`${name} is the name of a built-in profile`, { field: 'name' });
    const row = this.#db.sql.prepare('SELECT id FROM security_profiles WHERE workspace = ? AND name = ?').get(workspace, name) as
      { id: string } | undefined;
    if (row && row.id !== exceptId) throw conflict(`a profile named ${name} already exists`, { field: 'name' });
  }

  #event(type: string, caller: Actor, p: SecurityProfile): void {
    this.#events.emit({
      type,
      severity: 'info',
      workspace: caller.workspace,
      actor: caller.actor ?? null,
      details: { profileId: p.id, name: p.name, level: p.level, constraints: p.constraints },
    });
  }
}
