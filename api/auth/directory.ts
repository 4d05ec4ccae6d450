import type { Clock } from '../../core/clock.ts';
import { conflict, notFound, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { isUniqueViolation, type Db } from '../../core/db.ts';
import { ROLES, type Role } from './types.ts';
import { AuthEpoch } from './epoch.ts';

/** Workspaces, users and memberships: who exists and what role they hold where. No crypto here. */

export interface WorkspaceInfo {
  id: string;
  name: string;
  createdMs: number;
}

export interface UserRecord {
  id: string;
  username: string;
  passwordHash: string;
  disabled: boolean;
  createdMs: number;
}

/** A user as seen from one workspace (never the password hash). */
export interface MemberInfo {
  userId: string;
  username: string;
  role: Role;
  disabled: boolean;
  createdMs: number;
}

const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const WORKSPACE_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function checkUsername(v: unknown, field = 'username'): asserts v is string {
  if (typeof v !== 'string' || !USERNAME_RE.test(v))
    throw validationError(field, 'must be 1-64 characters: letters, digits, . _ @ - (starting with a letter or digit)');
}

export function checkRole(v: unknown, field = 'role'): asserts v is Role {
  if (typeof v !== 'string' || !(ROLES as readonly string[]).includes(v))
    throw validationError(field, `must be one of ${ROLES.join(', ')}`);
}

export function checkWorkspaceName(v: unknown, field = 'name'): asserts v is string {
  if (typeof v !== 'string' || !WORKSPACE_RE.test(v))
    throw validationError(field, 'must be 1-63 characters: lowercase letters, digits and -');
}

interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  disabled: number;
  created_ms: number;
}
const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  username: r.username,
  passwordHash: r.password_hash,
  disabled: r.disabled !== 0,
  createdMs: r.created_ms,
});

export class Directory {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #epoch: AuthEpoch;

  constructor(db: Db, clock: Clock, epoch = new AuthEpoch()) {
    this.#db = db;
    this.#clock = clock;
    this.#epoch = epoch;
  }

  createWorkspace(name: string): WorkspaceInfo {
    checkWorkspaceName(name);
    const ws = { id: newId('wsp'), name, createdMs: this.#clock.nowMs() };
    try {
      this.#db.sql.prepare('INSERT INTO workspaces (id, name, created_ms) VALUES (?, ?, ?)').run(ws.id, ws.name, ws.createdMs);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`a workspace named ${name} already exists`, { field: 'name' });
      throw err;
    }
    return ws;
  }

  /** Finds a workspace by id (`wsp_...`) or by name (names cannot contain `_`, so the two never clash). */
  findWorkspace(ref: string): WorkspaceInfo | null {
    const row = this.#db.sql.prepare('SELECT id, name, created_ms FROM workspaces WHERE id = ? OR name = ?').get(ref, ref) as
      { id: string; name: string; created_ms: number } | undefined;
    return row ? { id: row.id, name: row.name, createdMs: row.created_ms } : null;
  }

  /** Inserts a user with an already-computed hash; CONFLICT when the name is taken (case-insensitively). */
  insertUser(username: string, passwordHash: string): UserRecord {
    const user = { id: newId('usr'), username, passwordHash, disabled: false, createdMs: this.#clock.nowMs() };
    try {
      this.#db.sql
        .prepare('INSERT INTO users (id, username, password_hash, disabled, created_ms) VALUES (?, ?, ?, 0, ?)')
        .run(user.id, username, passwordHash, user.createdMs);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`a user named ${username} already exists`, { field: 'username' });
      throw err;
    }
    return user;
  }

  userById(id: string): UserRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  /** Case-insensitive. */
  userByName(username: string): UserRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM users WHERE username = ?').get(username) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  countUsers(): number {
    return (this.#db.sql.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n;
  }

  setDisabled(userId: string, disabled: boolean): void {
    const res = this.#db.sql.prepare('UPDATE users SET disabled = ? WHERE id = ?').run(disabled ? 1 : 0, userId);
    this.#epoch.bump();
    if (res.changes === 0) throw notFound('user', userId);
  }

  /** The user's role in a workspace (by id), or null when not a member. */
  roleOf(userId: string, workspaceId: string): Role | null {
    const row = this.#db.sql.prepare('SELECT role FROM memberships WHERE user_id = ? AND workspace_id = ?').get(userId, workspaceId) as
      { role: string } | undefined;
    return row && (ROLES as readonly string[]).includes(row.role) ? (row.role as Role) : null;
  }

  /** The workspace a user acts in when none is requested: the first one they joined. */
  firstMembership(userId: string): { workspace: string; role: Role } | null {
    const row = this.#db.sql.prepare('SELECT workspace_id, role FROM memberships WHERE user_id = ? ORDER BY rowid LIMIT 1').get(userId) as
      { workspace_id: string; role: string } | undefined;
    return row && (ROLES as readonly string[]).includes(row.role) ? { workspace: row.workspace_id, role: row.role as Role } : null;
  }

  /** Adds the user to a workspace, or changes their role there. */
  addMembership(userId: string, workspaceId: string, role: Role): void {
    checkRole(role);
    if (!this.userById(userId)) throw notFound('user', userId);
    if (!this.#db.sql.prepare('SELECT 1 AS x FROM workspaces WHERE id = ?').get(workspaceId)) throw notFound('workspace', workspaceId);
    this.#db.sql
      .prepare(
        'INSERT INTO memberships (user_id, workspace_id, role) VALUES (?, ?, ?) ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role',
      )
      .run(userId, workspaceId, role);
    this.#epoch.bump();
  }

  listMembers(workspaceId: string): MemberInfo[] {
    const rows = this.#db.sql
      .prepare(
        'SELECT u.id, u.username, u.disabled, u.created_ms, m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? ORDER BY u.created_ms, u.rowid',
      )
      .all(workspaceId) as { id: string; username: string; disabled: number; created_ms: number; role: Role }[];
    return rows.map((r) => ({ userId: r.id, username: r.username, role: r.role, disabled: r.disabled !== 0, createdMs: r.created_ms }));
  }
}
