import { createHash } from 'node:crypto';

/**
 * The audit log's hash chain. Every entry stores the previous entry's hash and its own:
 * `hash = sha256(prevHash || canonical(fields))`, hex. The first entry chains from
 * {@link GENESIS_HASH}. Editing a row breaks its own hash; deleting or reordering rows breaks
 * the next row's `prevHash` or the sequence.
 *
 * The canonical form is defined here, field by field, and must never change for stored
 * entries: a new field needs a new chain version, not an edit to this list.
 */
export const GENESIS_HASH = createHash('sha256').update('director-audit-genesis-v1').digest('hex');

export const OUTCOMES = ['success', 'denied', 'error'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** What the chain covers: every stored field but the hashes themselves. */
export interface ChainedFields {
  id: string;
  seq: number;
  tsMs: number;
  actor: string | null;
  username: string | null;
  workspace: string | null;
  action: string;
  target: string | null;
  outcome: Outcome;
  status: number;
  requestId: string | null;
  source: string | null;
  userAgent: string | null;
}

/** JSON of the fields in a fixed key order; every value is a string, a number or null. */
export function canonicalFields(f: ChainedFields): string {
  return JSON.stringify({
    action: f.action,
    actor: f.actor,
    id: f.id,
    outcome: f.outcome,
    requestId: f.requestId,
    seq: f.seq,
    source: f.source,
    status: f.status,
    target: f.target,
    tsMs: f.tsMs,
    userAgent: f.userAgent,
    username: f.username,
    workspace: f.workspace,
  });
}

export function chainHash(prevHash: string, f: ChainedFields): string {
  return createHash('sha256').update(prevHash).update(canonicalFields(f)).digest('hex');
}
