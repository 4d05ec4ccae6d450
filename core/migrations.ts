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
    name: 'orchestration core: sessions, departments, environments, context windows, checkpoints; sandbox owners',
    sql: `
    CREATE TABLE sessions (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      type TEXT NOT NULL,
      name TEXT NOT NULL,
      description TEXT NOT NULL,
      status TEXT NOT NULL,
      reason TEXT,
      config TEXT NOT NULL,
      created_by TEXT,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      expires_ms INTEGER,
      ended_ms INTEGER,
      deleted_ms INTEGER
    );
    CREATE INDEX sessions_ws ON sessions (workspace, status, created_ms);
    CREATE INDEX sessions_expiry ON sessions (expires_ms) WHERE status IN ('active', 'paused');
    CREATE TABLE session_counters (
      session_id TEXT NOT NULL,
      department_id TEXT NOT NULL DEFAULT '',
      tasks_total INTEGER NOT NULL DEFAULT 0,
      tasks_failed INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (session_id, department_id)
    );
    CREATE TABLE departments (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      name TEXT NOT NULL,
      domain TEXT NOT NULL,
      capabilities TEXT NOT NULL,
      config TEXT NOT NULL,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      deleted_ms INTEGER
    );
    CREATE INDEX departments_ws ON departments (workspace, session_id, created_ms);
    CREATE TABLE environments (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      name TEXT NOT NULL,
      template TEXT NOT NULL,
      template_version INTEGER NOT NULL,
      template_snapshot TEXT NOT NULL,
      variables TEXT NOT NULL,
      secret_names TEXT NOT NULL,
      secrets TEXT,
      files TEXT NOT NULL,
      created_by TEXT,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      deleted_ms INTEGER
    );
    CREATE INDEX environments_ws ON environments (workspace, template, created_ms);
    CREATE TABLE context_windows (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      name TEXT NOT NULL,
      config TEXT NOT NULL,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      deleted_ms INTEGER
    );
    CREATE INDEX context_windows_ws ON context_windows (workspace, session_id, created_ms);
    CREATE TABLE context_items (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      context_id TEXT NOT NULL,
      type TEXT NOT NULL,
      content TEXT NOT NULL,
      metadata TEXT NOT NULL,
      importance REAL NOT NULL,
      size_bytes INTEGER NOT NULL,
      created_ms INTEGER NOT NULL
    );
    CREATE INDEX context_items_ctx ON context_items (context_id, seq);
    CREATE TABLE checkpoints (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      name TEXT NOT NULL,
      description TEXT NOT NULL,
      data TEXT NOT NULL,
      state TEXT NOT NULL,
      context TEXT NOT NULL,
      messages TEXT NOT NULL,
      files TEXT NOT NULL,
      bytes INTEGER NOT NULL,
      file_count INTEGER NOT NULL,
      created_by TEXT,
      created_ms INTEGER NOT NULL
    );
    CREATE INDEX checkpoints_ws ON checkpoints (workspace, session_id, created_ms);
    CREATE INDEX checkpoints_session ON checkpoints (session_id, created_ms);
    CREATE TABLE checkpoint_blobs (
      checkpoint_id TEXT NOT NULL,
      digest TEXT NOT NULL,
      PRIMARY KEY (checkpoint_id, digest)
    );
    CREATE INDEX checkpoint_blobs_digest ON checkpoint_blobs (digest);
    CREATE TABLE checkpoint_chunks (
      digest TEXT PRIMARY KEY,
      content BLOB NOT NULL
    );
    ALTER TABLE sandboxes ADD COLUMN session_id TEXT;
    ALTER TABLE sandboxes ADD COLUMN department_id TEXT;
    ALTER TABLE sandboxes ADD COLUMN environment_id TEXT;
    CREATE INDEX sandboxes_session ON sandboxes (session_id, status) WHERE session_id IS NOT NULL;`,
  },
  {
    version: 5,
    name: 'workflows: definitions, runs, step attempts and the per-workflow event log behind SSE resume',
    sql: `
    CREATE TABLE workflows (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      department_id TEXT,
      name TEXT NOT NULL,
      description TEXT NOT NULL,
      steps TEXT NOT NULL,
      config TEXT NOT NULL,
      target TEXT NOT NULL,
      metadata TEXT NOT NULL,
      status TEXT NOT NULL,
      last_run_id TEXT,
      created_by TEXT,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL
    );
    CREATE INDEX workflows_ws ON workflows (workspace, session_id, created_ms);
    CREATE INDEX workflows_status ON workflows (workspace, status, created_ms);
    CREATE TABLE workflow_runs (
      id TEXT PRIMARY KEY,
      workflow_id TEXT NOT NULL,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      department_id TEXT,
      number INTEGER NOT NULL,
      state TEXT NOT NULL,
      actor TEXT,
      environment TEXT NOT NULL,
      context TEXT NOT NULL,
      step INTEGER NOT NULL DEFAULT 0,
      round INTEGER NOT NULL DEFAULT 0,
      checkpoint_id TEXT,
      checkpoint_step INTEGER,
      restore_id TEXT,
      next_ms INTEGER,
      sandbox_id TEXT,
      own_sandbox INTEGER NOT NULL,
      reason TEXT,
      output TEXT,
      created_ms INTEGER NOT NULL,
      queued_ms INTEGER,
      started_ms INTEGER,
      deadline_ms INTEGER,
      ended_ms INTEGER,
      updated_ms INTEGER NOT NULL,
      UNIQUE (workflow_id, number)
    );
    CREATE INDEX workflow_runs_open ON workflow_runs (state, created_ms) WHERE state IN ('pending', 'queued', 'running');
    CREATE INDEX workflow_runs_session ON workflow_runs (session_id, state);
    CREATE TABLE workflow_attempts (
      run_id TEXT NOT NULL,
      n INTEGER NOT NULL,
      step INTEGER NOT NULL,
      kind TEXT NOT NULL,
      round INTEGER NOT NULL,
      state TEXT NOT NULL,
      exit_code INTEGER,
      timed_out INTEGER NOT NULL DEFAULT 0,
      stdout TEXT NOT NULL DEFAULT '',
      stderr TEXT NOT NULL DEFAULT '',
      truncated INTEGER NOT NULL DEFAULT 0,
      detail TEXT NOT NULL DEFAULT '{}',
      started_ms INTEGER NOT NULL,
      ended_ms INTEGER,
      PRIMARY KEY (run_id, n)
    );
    CREATE TABLE workflow_events (
      workflow_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      run_id TEXT,
      type TEXT NOT NULL,
      data TEXT NOT NULL,
      ts_ms INTEGER NOT NULL,
      PRIMARY KEY (workflow_id, seq)
    );`,
  },
  {
    version: 6,
    name: 'agents, chat turns, messages and events, tool calls, approvals, auto-approve rules, credential vault, LLM providers',
    sql: `
    CREATE TABLE agents (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      department_id TEXT NOT NULL,
      name TEXT NOT NULL,
      config TEXT NOT NULL,
      created_by TEXT,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      deleted_ms INTEGER
    );
    CREATE INDEX agents_ws ON agents (workspace, session_id, created_ms);
    CREATE TABLE chat_turns (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      status TEXT NOT NULL,
      reason TEXT,
      provider TEXT NOT NULL,
      model TEXT NOT NULL,
      usage TEXT NOT NULL,
      cost REAL,
      steps INTEGER NOT NULL DEFAULT 0,
      created_by TEXT,
      started_ms INTEGER NOT NULL,
      ended_ms INTEGER
    );
    CREATE INDEX chat_turns_session ON chat_turns (session_id, started_ms);
    CREATE TABLE chat_messages (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      turn_id TEXT,
      agent_id TEXT,
      role TEXT NOT NULL,
      content TEXT NOT NULL,
      created_ms INTEGER NOT NULL
    );
    CREATE INDEX chat_messages_session ON chat_messages (session_id, seq);
    CREATE TABLE chat_events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      turn_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      type TEXT NOT NULL,
      data TEXT NOT NULL,
      ts_ms INTEGER NOT NULL
    );
    CREATE INDEX chat_events_session ON chat_events (session_id, seq);
    CREATE INDEX chat_events_ws ON chat_events (workspace, seq);
    CREATE INDEX chat_events_ts ON chat_events (ts_ms);
    CREATE TABLE tool_calls (
      turn_id TEXT NOT NULL,
      call_id TEXT NOT NULL,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      tool TEXT NOT NULL,
      status TEXT NOT NULL,
      exit_code INTEGER,
      duration_ms INTEGER NOT NULL,
      sandbox_id TEXT,
      approval_id TEXT,
      ended_ms INTEGER NOT NULL,
      PRIMARY KEY (turn_id, call_id)
    );
    CREATE INDEX tool_calls_session ON tool_calls (session_id, ended_ms);
    CREATE TABLE approvals (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      session_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      turn_id TEXT NOT NULL,
      call_id TEXT NOT NULL,
      tool TEXT NOT NULL,
      input TEXT NOT NULL,
      input_hash TEXT NOT NULL,
      status TEXT NOT NULL,
      reason TEXT,
      decided_by TEXT,
      rule_id TEXT,
      created_ms INTEGER NOT NULL,
      expires_ms INTEGER NOT NULL,
      decided_ms INTEGER
    );
    CREATE INDEX approvals_ws ON approvals (workspace, status, created_ms);
    CREATE INDEX approvals_session ON approvals (session_id, status);
    CREATE TABLE auto_approve_rules (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      tool TEXT NOT NULL,
      match TEXT,
      scope TEXT NOT NULL,
      session_id TEXT,
      created_by TEXT,
      created_ms INTEGER NOT NULL
    );
    CREATE INDEX auto_approve_rules_agent ON auto_approve_rules (agent_id, tool);
    CREATE TABLE vault_secrets (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      name TEXT NOT NULL,
      description TEXT NOT NULL,
      value TEXT,
      version INTEGER NOT NULL,
      created_by TEXT,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      rotated_ms INTEGER,
      deleted_ms INTEGER
    );
    CREATE UNIQUE INDEX vault_secrets_name ON vault_secrets (workspace, name) WHERE deleted_ms IS NULL;
    CREATE TABLE llm_providers (
      id TEXT PRIMARY KEY,
      workspace TEXT NOT NULL,
      name TEXT NOT NULL,
      type TEXT NOT NULL,
      base_url TEXT NOT NULL,
      api_key TEXT,
      default_model TEXT NOT NULL,
      pricing TEXT NOT NULL,
      created_by TEXT,
      created_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL,
      deleted_ms INTEGER
    );
    CREATE UNIQUE INDEX llm_providers_name ON llm_providers (workspace, name) WHERE deleted_ms IS NULL;`,
  },
  {
    version: 7,
    name: 'network policies stored before first-match are marked deny-first',
    // Until then a policy's deny rules were evaluated ahead of its allow rules whatever their
    // order. The mark keeps them enforced that way until the network layer's boot decides each one
    // (recompiled in order as written, or kept and flagged for review: runtime/network/upgrade.ts).
    sql: `
    UPDATE networks SET policy = json_set(policy, '$.order', 'deny-first')
      WHERE policy IS NOT NULL AND json_extract(policy, '$.order') IS NULL;`,
  },
  {
    version: 8,
    name: "sandboxes: the environment of a sandbox fitted from the warm pool, sealed (it is not in the container's own config)",
    sql: `ALTER TABLE sandboxes ADD COLUMN env_sealed TEXT;`,
  },
  {
    version: 9,
    name: 'sandboxes: the claims of a warm pool by time (a pool starts with the disk sizes of its last claims)',
    sql: `CREATE INDEX sandboxes_pool_claims ON sandboxes (pool_key, created_ms) WHERE pooled = 0 AND pool_key IS NOT NULL;`,
  },
  {
    version: 10,
    name: 'checkpoints: blob references kept per set of blobs, shared by checkpoints that refer to the same set',
    // A checkpoint of an unchanged workspace refers to exactly the blobs of the one before it: it
    // now points at that set instead of writing a reference row per blob again (orchestration/
    // checkpoints/store.ts). A set is named by the sha256 of its sorted digests; the existing
    // references become one set per checkpoint, named after it (never shared). The UPDATE rewrites
    // every checkpoint row once, on the first start after the upgrade.
    sql: `
    ALTER TABLE checkpoint_blobs RENAME COLUMN checkpoint_id TO blob_set;
    ALTER TABLE checkpoints ADD COLUMN blob_set TEXT;
    UPDATE checkpoints SET blob_set = id;
    CREATE INDEX checkpoints_blob_set ON checkpoints (blob_set);`,
  },
];
