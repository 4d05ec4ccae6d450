import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chainHash, GENESIS_HASH } from '../../../api/audit/chain.ts';
import { AuditLog, type AuditInput } from '../../../api/audit/log.ts';
import { openDb } from '../../../core/db.ts';

const clock = {
  ms: Date.UTC(2030, 0, 1),
  nowMs(): number {
    return this.ms;
  },
};

function fresh() {
  const db = openDb('/nonexistent', ':memory:');
  return { db, log: new AuditLog(db, { clock }) };
}

const input = (n: number, over: Partial<AuditInput> = {}): AuditInput => ({
  actor: 'usr_aaaaaaaaaaaaaaaa',
  username: 'alice',
  workspace: 'wsp_one',
  action: 'POST /v1/sandboxes',
  target: `sbx_${String(n).padStart(16, '0')}`,
  outcome: 'success',
  status: 201,
  requestId: `req_${n}`,
  source: '127.0.0.1',
  userAgent: 'test',
  ...over,
});

function fill(log: AuditLog, n: number) {
  return Array.from({ length: n }, (_, i) => log.append(input(i + 1)));
}

test('appended entries chain from genesis and verify', () => {
  const { log } = fresh();
  const [first, second, third] = fill(log, 3);
  assert.is(first!.seq, 1);
  assert.match(first!.id, /^aud_/);
  assert.is(first!.prevHash, GENESIS_HASH);
  assert.is(second!.prevHash, first!.hash);
  assert.is(third!.prevHash, second!.hash);
  assert.is(first!.ts, '2030-01-01T00:00:00.000Z');
  assert.equal(log.verify(), { ok: true, entries: 3, head: third!.hash });
});

test('an empty log verifies with the genesis hash as head', () => {
  assert.equal(fresh().log.verify(), { ok: true, entries: 0, head: GENESIS_HASH });
});

test('the genesis value is fixed and the first hash is reproducible from the fields', () => {
  assert.is(GENESIS_HASH, createHash('sha256').update('director-audit-genesis-v1').digest('hex'));
  const { log } = fresh();
  const e = log.append(input(1));
  const { ts, prevHash: _p, hash, ...rest } = e;
  assert.is(chainHash(GENESIS_HASH, { ...rest, tsMs: Date.parse(ts) }), hash);
});

test("editing one row's outcome is reported at that row", () => {
  const { db, log } = fresh();
  const entries = fill(log, 5);
  db.sql.prepare('UPDATE audit_log SET outcome = ? WHERE seq = 3').run('denied');
  assert.equal(log.verify(), { ok: false, brokenAt: { seq: 3, id: entries[2]!.id }, reason: 'hash_mismatch' });
});

test("rewriting an edited row's hash too is reported at the next row", () => {
  const { db, log } = fresh();
  const entries = fill(log, 5);
  const e = entries[2]!;
  const forged = chainHash(e.prevHash, { ...e, tsMs: Date.parse(e.ts), outcome: 'error' });
  db.sql.prepare('UPDATE audit_log SET outcome = ?, hash = ? WHERE seq = 3').run('error', forged);
  assert.equal(log.verify(), { ok: false, brokenAt: { seq: 4, id: entries[3]!.id }, reason: 'prev_mismatch' });
});

test('deleting a middle row is reported at the row after it', () => {
  const { db, log } = fresh();
  const entries = fill(log, 5);
  db.sql.exec('DELETE FROM audit_log WHERE seq = 3');
  assert.equal(log.verify(), { ok: false, brokenAt: { seq: 4, id: entries[3]!.id }, reason: 'gap' });
});

test('deleting the first row is reported', () => {
  const { db, log } = fresh();
  const entries = fill(log, 3);
  db.sql.exec('DELETE FROM audit_log WHERE seq = 1');
  assert.equal(log.verify(), { ok: false, brokenAt: { seq: 2, id: entries[1]!.id }, reason: 'gap' });
});

test('deleting a middle row and renumbering the rest is reported as a broken link', () => {
  const { db, log } = fresh();
  const entries = fill(log, 5);
  db.sql.exec('DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = seq - 1 WHERE seq > 3');
  assert.equal(log.verify(), { ok: false, brokenAt: { seq: 3, id: entries[3]!.id }, reason: 'prev_mismatch' });
});

test('swapping two rows is reported at the first of them', () => {
  const { db, log } = fresh();
  const entries = fill(log, 5);
  db.sql.exec(
    'UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -1',
  );
  assert.equal(log.verify(), { ok: false, brokenAt: { seq: 2, id: entries[2]!.id }, reason: 'prev_mismatch' });
});

test('appends after a break still chain to the stored head', () => {
  const { db, log } = fresh();
  fill(log, 3);
  db.sql.exec('UPDATE audit_log SET status = 500 WHERE seq = 1');
  const next = log.append(input(4));
  assert.is(next.seq, 4);
  const v = log.verify();
  assert.is(v.ok, false);
  assert.is(!v.ok && v.brokenAt.seq, 1);
});

test('concurrent appends from many callers stay in one chain', async () => {
  const { log } = fresh();
  await Promise.all(Array.from({ length: 50 }, (_, i) => Promise.resolve().then(() => log.append(input(i + 1)))));
  const v = log.verify();
  assert.equal(v.ok && v.entries, 50);
});

test('two connections to one file appending in turn stay in one chain (the head is never cached)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-audit-'));
  try {
    const a = openDb(dir);
    const b = openDb(dir);
    const la = new AuditLog(a, { clock });
    const lb = new AuditLog(b, { clock });
    for (let i = 1; i <= 10; i++) (i % 2 ? la : lb).append(input(i));
    assert.equal(
      la.list().items.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    const v = lb.verify();
    assert.equal(v.ok && v.entries, 10);
    a.close();
    b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a second log on the same store keeps existing entries', () => {
  const { db, log } = fresh();
  fill(log, 2);
  const again = new AuditLog(db, { clock });
  assert.equal(again.verify().ok, true);
  assert.is(again.list().items.length, 2);
});

test('list pages with a cursor without repeats or misses', () => {
  const { log } = fresh();
  const entries = fill(log, 7);
  const seen: string[] = [];
  let after: number | undefined;
  let pages = 0;
  for (;;) {
    const page = log.list({ limit: 3, ...(after === undefined ? {} : { after }) });
    seen.push(...page.items.map((e) => e.id));
    pages++;
    if (page.nextCursor === null) break;
    after = page.nextCursor;
  }
  assert.is(pages, 3);
  assert.equal(
    seen,
    entries.map((e) => e.id),
  );
});

test('list filters by actor (user id matches their keys), action, outcome, target and time', () => {
  const { log } = fresh();
  const user = 'usr_bbbbbbbbbbbbbbbb';
  log.append(input(1, { actor: user }));
  log.append(input(2, { actor: `key_cccccccccccccccc (${user})`, action: 'DELETE /v1/sandboxes/:id' }));
  log.append(input(3, { actor: 'usr_dddddddddddddddd', outcome: 'denied', status: 403, tsMs: clock.ms + 60_000 }));
  log.append(input(4, { actor: `key_eeeeeeeeeeeeeeee (usr_dddddddddddddddd)` }));
  assert.equal(
    log.list({ actor: user }).items.map((e) => e.seq),
    [1, 2],
  );
  assert.equal(
    log.list({ actor: `key_cccccccccccccccc (${user})` }).items.map((e) => e.seq),
    [2],
  );
  assert.equal(
    log.list({ action: 'DELETE /v1/sandboxes/:id' }).items.map((e) => e.seq),
    [2],
  );
  assert.equal(
    log.list({ outcome: 'denied' }).items.map((e) => e.seq),
    [3],
  );
  assert.equal(
    log.list({ target: input(4).target! }).items.map((e) => e.seq),
    [4],
  );
  assert.equal(
    log.list({ sinceMs: clock.ms + 1, untilMs: clock.ms + 60_000 }).items.map((e) => e.seq),
    [3],
  );
});

test('list shows a workspace its own entries, and admins also the entries with no workspace', () => {
  const { log } = fresh();
  log.append(input(1, { workspace: 'wsp_one' }));
  log.append(input(2, { workspace: 'wsp_two' }));
  log.append(input(3, { workspace: null, actor: null, outcome: 'denied', status: 401 }));
  assert.equal(
    log.list({ visibleTo: { workspace: 'wsp_one', admin: false } }).items.map((e) => e.seq),
    [1],
  );
  assert.equal(
    log.list({ visibleTo: { workspace: 'wsp_one', admin: true } }).items.map((e) => e.seq),
    [1, 3],
  );
  assert.equal(
    log.list({ visibleTo: { workspace: 'wsp_two', admin: false } }).items.map((e) => e.seq),
    [2],
  );
});

test.run();
