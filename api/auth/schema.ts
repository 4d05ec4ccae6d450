import type { Db } from '../../runtime/store/db.ts';

/**
 * The auth tables. Kept out of the shared `MIGRATIONS` list: every statement is idempotent
 * (`IF NOT EXISTS`), so {@link ensureAuthSchema} runs at every start and in every test.
 *
 * Secrets never appear here in the clear except the JWT signing secret (`auth_secrets`),
 * which must be usable as-is; the store directory is created 0700.
 */
const AUTH_SCHEMA = `
CREATE TABLE IF NOT EXISTS workspaces (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  PRIMARY KEY (user_id, workspace_id)
);
CREATE INDEX IF NOT EXISTS memberships_ws ON memberships (workspace_id);
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  prefix TEXT NOT NULL UNIQUE,
  digest TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER,
  revoked_ms INTEGER,
  last_used_ms INTEGER,
  rotated_from TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_ws ON api_keys (workspace_id, created_ms);
CREATE TABLE IF NOT EXISTS revoked_tokens (
  jti TEXT PRIMARY KEY,
  expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_exp ON revoked_tokens (expires_ms);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  id TEXT PRIMARY KEY,
  digest TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  workspace_id TEXT NOT NULL,
  family TEXT NOT NULL,
  access_jti TEXT,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  revoked_ms INTEGER
);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_tokens_access ON refresh_tokens (access_jti);
CREATE TABLE IF NOT EXISTS auth_secrets (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

/** Creates the auth tables if they do not exist yet. Safe to call any number of times. */
export function ensureAuthSchema(db: Db): void {
  db.tx(() => db.sql.exec(AUTH_SCHEMA));
}

/** True when `err` is SQLite refusing a duplicate value in a UNIQUE or PRIMARY KEY column. */
export const isUniqueViolation = (err: unknown): boolean =>
  err instanceof Error && /UNIQUE constraint failed|PRIMARY KEY constraint failed/.test(err.message);
