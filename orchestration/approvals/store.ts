import type { Db } from '../../core/db.ts';
import type { AutoApproveRule, AutoApproveScope } from './policy.ts';

export const APPROVAL_STATES = ['pending', 'approved', 'denied', 'timed_out', 'superseded', 'cancelled'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];
/** Every state but `pending` and `approved` means the call did not run. */
export type Refusal = Exclude<ApprovalState, 'pending' | 'approved'>;

/** One tool call waiting for (or past) a person's decision; bound to the call by tool, call id and input hash. */
export interface ApprovalRecord {
  id: string;
  workspace: string;
  sessionId: string;
  agentId: string;
  turnId: string;
  callId: string;
  tool: string;
  /** The call's input as shown to the approver (secrets redacted). */
  input: unknown;
  inputHash: string;
  status: ApprovalState;
  reason: string | null;
  /** Who decided: an actor, `rule:aar_…` for an auto-approve rule, or `system` (timeout, supersede, cancel). */
  decidedBy: string | null;
  ruleId: string | null;
  createdMs: number;
  expiresMs: number;
  decidedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  session_id: string;
  agent_id: string;
  turn_id: string;
  call_id: string;
  tool: string;
  input: string;
  input_hash: string;
  status: string;
  reason: string | null;
  decided_by: string | null;
  rule_id: string | null;
  created_ms: number;
  expires_ms: number;
  decided_ms: number | null;
}

const fromRow = (r: Row): ApprovalRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  agentId: r.agent_id,
  turnId: r.turn_id,
  callId: r.call_id,
  tool: r.tool,
  input: JSON.parse(r.input) as unknown,
  inputHash: r.input_hash,
  status: r.status as ApprovalState,
  reason: r.reason,
  decidedBy: r.decided_by,
  ruleId: r.rule_id,
  createdMs: r.created_ms,
  expiresMs: r.expires_ms,
  decidedMs: r.decided_ms,
});

interface RuleRow {
  id: string;
  workspace: string;
  agent_id: string;
  tool: string;
  match: string | null;
  scope: string;
  session_id: string | null;
  created_by: string | null;
  created_ms: number;
}

const ruleFromRow = (r: RuleRow): AutoApproveRule => ({
  id: r.id,
  workspace: r.workspace,
  agentId: r.agent_id,
  tool: r.tool,
  match: r.match ? (JSON.parse(r.match) as Record<string, string>) : null,
  scope: r.scope as AutoApproveScope,
  sessionId: r.session_id,
  createdBy: r.created_by,
  createdMs: r.created_ms,
});

export interface ApprovalFilter {
  status?: ApprovalState;
  sessionId?: string;
  agentId?: string;
  limit: number;
  offset: number;
}

/** Approvals and permanent auto-approve rules in the embedded store. */
export class ApprovalStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: ApprovalRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO approvals (id, workspace, session_id, agent_id, turn_id, call_id, tool, input, input_hash, status, reason, decided_by,
           rule_id, created_ms, expires_ms, decided_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.sessionId,
        r.agentId,
        r.turnId,
        r.callId,
        r.tool,
        JSON.stringify(r.input ?? null),
        r.inputHash,
        r.status,
        r.reason,
        r.decidedBy,
        r.ruleId,
        r.createdMs,
        r.expiresMs,
        r.decidedMs,
      );
  }

  byId(id: string): ApprovalRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM approvals WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  get(workspace: string, id: string): ApprovalRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM approvals WHERE id = ? AND workspace = ?').get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string, f: ApprovalFilter): { items: ApprovalRecord[]; total: number } {
    const where = ['workspace = ?'];
    const args: (string | number)[] = [workspace];
    for (const [col, v] of [
      ['status', f.status],
      ['session_id', f.sessionId],
      ['agent_id', f.agentId],
    ] as const) {
      if (v === undefined) continue;
      where.push(`${col} = ?`);
      args.push(v);
    }
    const w = where.join(' AND ');
    const total = (this.#db.sql.prepare(`SELECT count(*) AS n FROM approvals WHERE ${w}`).get(...args) as { n: number }).n;
    const rows = this.#db.sql
      .prepare(`SELECT * FROM approvals WHERE ${w} ORDER BY created_ms DESC, id LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset) as unknown as Row[];
    return { items: rows.map(fromRow), total };
  }

  /**
   * Decides a pending approval: moves it to `to` only if it is still pending (one decision wins,
   * whoever comes second gets null).
   */
  decide(
    id: string,
    to: Exclude<ApprovalState, 'pending'>,
    nowMs: number,
    by: string,
    reason: string | null,
    ruleId: string | null = null,
  ) {
    const res = this.#db.sql
      .prepare(
        "UPDATE approvals SET status = ?, decided_by = ?, reason = ?, rule_id = ?, decided_ms = ? WHERE id = ? AND status = 'pending'",
      )
      .run(to, by, reason, ruleId, nowMs, id);
    return Number(res.changes) === 1 ? this.byId(id) : null;
  }

  /** Pending approvals of a session (or of every session when omitted). */
  pending(sessionId?: string): ApprovalRecord[] {
    const rows = (sessionId
      ? this.#db.sql.prepare("SELECT * FROM approvals WHERE session_id = ? AND status = 'pending'").all(sessionId)
      : this.#db.sql.prepare("SELECT * FROM approvals WHERE status = 'pending'").all()) as unknown as Row[];
    return rows.map(fromRow);
  }

  /** How many approvals of a session are in each state. */
  countsOf(sessionId: string): Partial<Record<ApprovalState, number>> {
    const rows = this.#db.sql
      .prepare('SELECT status, count(*) AS n FROM approvals WHERE session_id = ? GROUP BY status')
      .all(sessionId) as unknown as { status: ApprovalState; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  insertRule(r: AutoApproveRule): void {
    this.#db.sql
      .prepare(
        `INSERT INTO auto_approve_rules (id, workspace, agent_id, tool, match, scope, session_id, created_by, created_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.id, r.workspace, r.agentId, r.tool, r.match ? JSON.stringify(r.match) : null, r.scope, r.sessionId, r.createdBy, r.createdMs);
  }

  rules(workspace: string, agentId?: string): AutoApproveRule[] {
    const rows = (agentId
      ? this.#db.sql
          .prepare('SELECT * FROM auto_approve_rules WHERE workspace = ? AND agent_id = ? ORDER BY created_ms, id')
          .all(workspace, agentId)
      : this.#db.sql
          .prepare('SELECT * FROM auto_approve_rules WHERE workspace = ? ORDER BY created_ms, id')
          .all(workspace)) as unknown as RuleRow[];
    return rows.map(ruleFromRow);
  }

  rulesOfAgent(agentId: string): AutoApproveRule[] {
    return (
      this.#db.sql
        .prepare('SELECT * FROM auto_approve_rules WHERE agent_id = ? ORDER BY created_ms, id')
        .all(agentId) as unknown as RuleRow[]
    ).map(ruleFromRow);
  }

  deleteRule(id: string): boolean {
    return Number(this.#db.sql.prepare('DELETE FROM auto_approve_rules WHERE id = ?').run(id).changes) === 1;
  }

  deleteRulesOfAgent(agentId: string): void {
    this.#db.sql.prepare('DELETE FROM auto_approve_rules WHERE agent_id = ?').run(agentId);
  }
}
