/**
 * Every table of the embedded store, created and changed only here: an ordered list of
 * migrations applied by {@link openDb} and tracked by `PRAGMA user_version`. To change the
 * schema, append a migration; never edit one that has been released (a data dir that already
 * ran it would never see the edit).
 *
 * Migration 3 moved the tables that areas used to create for themselves at every start
 * (`CREATE TABLE IF NOT EXISTS` in auth, audit, idempotency, webhooks and security profiles)
 * into this list. It keeps their `IF NOT EXISTS`, so a data dir made before it, which already
 * has those tables and their rows, upgrades in place.
 */
export interface Migration {
  /** 1-based; equals the index in {@link MIGRATIONS} plus one. */
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sandboxes and events',
    sql: `
    CREATE TABLE sandboxes (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      name TEXT NOT NULL,
      image TEXT NOT NULL,
      status TEXT NOT NULL,
      reason TEXT,
      spec TEXT NOT NULL,
      labels TEXT NOT NULL,
      container_id TEXT,
      network_id TEXT,
      ip_address TEXT,
      pooled INTEGER NOT NULL DEFAULT 0,
      pool_key TEXT,
      exit_code INTEGER,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      started_ms INTEGER,
      deadline_ms INTEGER,
      stopped_ms INTEGER,
      deleted_ms INTEGER
    );
    CREATE INDEX sandboxes_ws_status ON sandboxes (workspace, status, created_ms);
    CREATE INDEX sandboxes_pool ON sandboxes (pool_key, status) WHERE pooled = 1;
    CREATE TABLE events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      type TEXT NOT NULL,
      severity TEXT NOT NULL,
      ts_ms INTEGER NOT NULL,
      workspace TEXT,
      sandbox_id TEXT,
      network_id TEXT,
      session_id TEXT,
      actor TEXT,
      details TEXT NOT NULL
    );
    CREATE INDEX events_ts ON events (ts_ms);
    CREATE INDEX events_sandbox ON events (sandbox_id, seq);
    CREATE INDEX events_type ON events (type, seq);`,
  },
  {
    version: 2,
    name: 'networks and observations',
    sql: `
    CREATE TABLE networks (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      name TEXT NOT NULL,
      short TEXT NOT NULL UNIQUE,
      bridge TEXT NOT NULL UNIQUE,
      subnet TEXT NOT NULL,
      gateway TEXT NOT NULL,
      enable_dns INTEGER NOT NULL,
      internal INTEGER NOT NULL,
      isolated INTEGER NOT NULL DEFAULT 0,
      private_for TEXT,
      engine_id TEXT,
      policy TEXT,
      labels TEXT NOT NULL DEFAULT '{}',
      status TEXT NOT NULL,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      deleted_ms INTEGER
    );
    CREATE INDEX networks_ws ON networks (workspace, status, created_ms);
    CREATE INDEX sandboxes_ip ON sandboxes (network_id, ip_address);
    CREATE TABLE net_observations (
      network_id TEXT NOT NULL,
      direction TEXT NOT NULL,
      proto TEXT NOT NULL,
      remote TEXT NOT NULL,
      port INTEGER NOT NULL,
      count INTEGER NOT NULL,
      first_ms INTEGER NOT NULL,
      last_ms INTEGER NOT NULL,
      PRIMARY KEY (network_id, direction, proto, remote, port)
    );
    CREATE TABLE dns_observations (
      network_id TEXT NOT NULL,
      name TEXT NOT NULL,
      address TEXT NOT NULL,
      last_ms INTEGER NOT NULL,
      PRIMARY KEY (network_id, name, address)
    );`,
  },
  {
    version: 3,
    name: 'auth, audit log, idempotency keys, webhooks and security profiles (adopted from their areas)',
    sql: `
    CREATE TABLE IF NOT EXISTS _health (k INTEGER PRIMARY KEY, ms INTEGER);

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

    CREATE TABLE IF NOT EXISTS audit_log (
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      ts_ms INTEGER NOT NULL,
      actor TEXT,
      username TEXT,
      workspace TEXT,
      action TEXT NOT NULL,
      target TEXT,
      outcome TEXT NOT NULL,
      status INTEGER NOT NULL,
      request_id TEXT,
      source TEXT,
      user_agent TEXT,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS audit_log_ws ON audit_log (workspace, seq);
    CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts_ms);

    CREATE TABLE IF NOT EXISTS idempotency_keys (
      workspace TEXT NOT NULL,
      key TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      method TEXT NOT NULL,
      route TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'done')),
      status_code INTEGER,
      response TEXT,
      created_ms INTEGER NOT NULL,
      expires_ms INTEGER NOT NULL,
      PRIMARY KEY (workspace, key)
    );
    CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_ms);

    CREATE TABLE IF NOT EXISTS webhooks (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      url TEXT NOT NULL,
      events TEXT NOT NULL,
      secret TEXT NOT NULL,
      created_by TEXT,
      dropped INTEGER NOT NULL DEFAULT 0,
      created_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS webhooks_ws ON webhooks (workspace, created_ms);
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      webhook_id TEXT NOT NULL,
      event TEXT NOT NULL,
      event_id TEXT,
      body TEXT NOT NULL,
      state TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_ms INTEGER,
      created_ms INTEGER NOT NULL,
      completed_ms INTEGER
    );
    CREATE INDEX IF NOT EXISTS webhook_deliveries_queue ON webhook_deliveries (webhook_id, state, seq);
    CREATE TABLE IF NOT EXISTS webhook_attempts (
      delivery_id TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      started_ms INTEGER NOT NULL,
      status_code INTEGER,
      error TEXT,
      duration_ms INTEGER NOT NULL,
      next_ms INTEGER,
      PRIMARY KEY (delivery_id, attempt)
    );

    CREATE TABLE IF NOT EXISTS security_profiles (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      name TEXT NOT NULL COLLATE NOCASE,
      description TEXT NOT NULL,
      level TEXT NOT NULL,
      constraints TEXT NOT NULL,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS security_profiles_name ON security_profiles (workspace, name);
    CREATE TABLE IF NOT EXISTS security_workspace_profiles (
      workspace TEXT PRIMARY KEY,
      profile_id TEXT NOT NULL,
      updated_ms INTEGER NOT NULL
    );`,
  },
  {
    version: 4,
    name: 'network policies stored before first-match are marked deny-first',
    // Until then a policy's deny rules were evaluated ahead of its allow rules whatever their
    // order. The mark keeps them enforced that way until the network layer's boot decides each one
    // (recompiled in order as written, or kept and flagged for review: runtime/network/upgrade.ts).
    sql: `
    UPDATE networks SET policy = json_set(policy, '$.order', 'deny-first')
      WHERE policy IS NOT NULL AND json_extract(policy, '$.order') IS NULL;`,
  },
];
