import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MIGRATIONS, openDb, type Db } from '../../../core/db.ts';
import { NO_OWNER, SandboxStore, toStoredSpec, type SandboxRecord } from '../../../runtime/store/sandboxes.ts';
import { resolveSpec } from '../../../runtime/sandbox/spec.ts';
import { defaultConfig } from './support.ts';

const cfg = defaultConfig();
const SPEC = toStoredSpec(resolveSpec({ environment: { SECRET: 'sup3r-s3cret', A: '1' } }, cfg));

let seq = 0;
function record(over: Partial<SandboxRecord> = {}): SandboxRecord {
  seq++;
  return {
    id: `sbx_${String(seq).padStart(16, '0')}`,
    workspace: 'ws1',
    name: `sb${seq}`,
    image: 'img',
    status: 'running',
    reason: null,
    spec: SPEC,
    labels: {},
    containerId: `c${seq}`,
    networkId: null,
    ipAddress: null,
    pooled: false,
    poolKey: null,
    exitCode: null,
    createdMs: 1000 + seq,
    updatedMs: 1000 + seq,
    startedMs: null,
    deadlineMs: null,
    stoppedMs: null,
    deletedMs: null,
    owner: NO_OWNER,
    ...over,
  };
}

function fresh(): { db: Db; store: SandboxStore } {
  const db = openDb('/tmp/x', ':memory:');
  return { db, store: new SandboxStore(db) };
}

test('openDb with :memory: creates no directory and applies the migrations', () => {
  const db = openDb('/nonexistent/never-created', ':memory:');
  assert.is(db.file, ':memory:');
  assert.not.ok(existsSync('/nonexistent/never-created'));
  const v = db.sql.prepare('PRAGMA user_version').get() as { user_version: number };
  assert.is(v.user_version, MIGRATIONS.length);
  db.checkWritable();
  db.close();
  db.close();
});

test('tx rolls back every write when the function throws', () => {
  const { db, store } = fresh();
  const r = record();
  assert.throws(
    () =>
      db.tx(() => {
        store.insert(r);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.is(store.byId(r.id), null);
});

test('a stored record reads back as inserted, with environment names but never values', () => {
  const { store } = fresh();
  const r = record({ labels: { team: 'a' } });
  store.insert(r);
  assert.equal(store.get('ws1', r.id), r);
  assert.equal(r.spec.environmentKeys, ['A', 'SECRET']);
  assert.not.ok('environment' in r.spec);
  assert.not.match(JSON.stringify(store.byId(r.id)), 'sup3r-s3cret');
});

test("another workspace's sandbox is indistinguishable from a missing one", () => {
  const { store } = fresh();
  const r = record();
  store.insert(r);
  assert.is(store.get('ws2', r.id), null);
  assert.is(store.get('ws1', 'sbx_missing'), null);
  assert.equal(store.list('ws2', { limit: 10, offset: 0 }), { items: [], total: 0 });
});

test('deleted and pooled records are hidden from get and list', () => {
  const { store } = fresh();
  const deleted = record({ status: 'deleted' });
  const pooled = record({ pooled: true, poolKey: 'k' });
  store.insert(deleted);
  store.insert(pooled);
  assert.is(store.get('ws1', deleted.id), null);
  assert.is(store.get('ws1', pooled.id), null);
  assert.is(store.list('ws1', { limit: 10, offset: 0 }).total, 0);
  assert.is(store.list('ws1', { status: 'deleted', limit: 10, offset: 0 }).total, 1);
});

test('list filters by status and labels, newest first, and pages with a total', () => {
  const { store } = fresh();
  const a = record({ labels: { team: 'a', 'app.io/name': 'web' } });
  const b = record({ labels: { team: 'b' }, status: 'stopped' });
  const c = record({ labels: { team: 'a' } });
  for (const r of [a, b, c]) store.insert(r);
  store.insert(record({ workspace: 'ws2', labels: { team: 'a' } }));
  const ids = (f: Parameters<SandboxStore['list']>[1]) => store.list('ws1', f).items.map((r) => r.id);
  assert.equal(ids({ limit: 10, offset: 0 }), [c.id, b.id, a.id]);
  assert.equal(ids({ status: 'running', limit: 10, offset: 0 }), [c.id, a.id]);
  assert.equal(ids({ labels: { team: 'a' }, limit: 10, offset: 0 }), [c.id, a.id]);
  assert.equal(ids({ labels: { team: 'a', 'app.io/name': 'web' }, limit: 10, offset: 0 }), [a.id]);
  assert.equal(ids({ labels: { team: 'zzz' }, limit: 10, offset: 0 }), []);
  const page = store.list('ws1', { limit: 1, offset: 1 });
  assert.equal(
    page.items.map((r) => r.id),
    [b.id],
  );
  assert.is(page.total, 3);
  assert.equal(store.list('ws1', { limit: 10, offset: 5 }), { items: [], total: 3 });
});

test('transition moves along a legal edge and applies the patch', () => {
  const { store } = fresh();
  const r = record({ status: 'creating' });
  store.insert(r);
  const running = store.transition(r.id, 'running', 5000, { startedMs: 4999, ipAddress: '10.0.0.2' });
  assert.is(running?.status, 'running');
  assert.is(running?.updatedMs, 5000);
  assert.is(running?.startedMs, 4999);
  assert.is(running?.ipAddress, '10.0.0.2');
  const stopped = store.transition(r.id, 'stopped', 6000, { exitCode: 137, reason: 'timeout' });
  assert.is(stopped?.status, 'stopped');
  assert.is(stopped?.exitCode, 137);
  assert.is(stopped?.reason, 'timeout');
});

test('transition refuses an illegal move and leaves the record untouched', () => {
  const { store } = fresh();
  const r = record({ status: 'stopped' });
  store.insert(r);
  assert.is(store.transition(r.id, 'running', 9000, { exitCode: 1 }), null);
  assert.equal(store.byId(r.id), r);
  assert.ok(store.transition(r.id, 'deleted', 9000, { deletedMs: 9000 }));
  assert.is(store.transition(r.id, 'deleted', 9001), null);
  assert.is(store.transition(r.id, 'running', 9002), null);
  assert.is(store.transition('sbx_missing', 'running', 9003), null);
});

/** The stored spec of a request claiming from the pool. */
const asked = (name: string, labels: Record<string, string> = {}, memory = SPEC.resourceLimits.memory) => ({
  ...SPEC,
  name,
  labels,
  resourceLimits: { ...SPEC.resourceLimits, memory },
});

test('claimPooled hands out each ready pooled sandbox of its key exactly once, oldest first', () => {
  const { store } = fresh();
  const pooled = [3, 1, 2].map((t) => record({ pooled: true, poolKey: 'k1', workspace: '', createdMs: t }));
  for (const r of pooled) store.insert(r);
  store.insert(record({ pooled: true, poolKey: 'k2', workspace: '' }));
  store.insert(record({ pooled: true, poolKey: 'k1', workspace: '', status: 'creating' }));
  store.insert(record({ pooled: false, poolKey: 'k1' }));
  const claimed: string[] = [];
  for (let i = 0; i <= pooled.length; i++) {
    const got = store.claimPooled('k1', 'ws9', asked(`n${i}`), 7000, 9000);
    if (got) claimed.push(got.record.id);
    else assert.is(i, pooled.length, 'ran out early');
  }
  assert.equal(claimed, [pooled[1]!.id, pooled[2]!.id, pooled[0]!.id]);
  assert.is(store.claimPooled('k1', 'ws9', asked('x'), 7000, 9000), null);
  assert.is(store.countPooled('k1'), 1);
  assert.is(store.countPooled('k2'), 1);
});

test('a claim takes a warm sandbox made with its disk size first, else the oldest; diskOnly takes only such a one', () => {
  const { store } = fresh();
  const sized = (disk: number) => ({ ...SPEC, resourceLimits: { ...SPEC.resourceLimits, disk } });
  const want = (disk: number) => ({ ...asked('n'), resourceLimits: { ...SPEC.resourceLimits, disk } });
  const [a512, b2048, c512] = [512, 2048, 512].map((disk, i) =>
    record({ pooled: true, poolKey: 'k', workspace: '', createdMs: i + 1, spec: sized(disk) }),
  );
  for (const r of [a512!, b2048!, c512!]) store.insert(r);
  const got = store.claimPooled('k', 'ws9', want(2048), 7000, 9000);
  assert.is(got?.record.id, b2048!.id, 'the one made with 2048 MiB, though not the oldest');
  assert.is(got?.madeWithDisk, 2048);
  assert.is(store.claimPooled('k', 'ws9', want(2048), 7000, 9000, NO_OWNER, { diskOnly: true }), null, 'none of 2048 left');
  const other = store.claimPooled('k', 'ws9', want(2048), 7000, 9000);
  assert.is(other?.record.id, a512!.id, 'no match: the oldest');
  assert.is(other?.madeWithDisk, 512);
  assert.is(other?.record.spec.resourceLimits.disk, 2048, "the record carries the request's disk");
  assert.is(store.claimPooled('k', 'ws9', want(512), 7000, 9000, NO_OWNER, { diskOnly: true })?.record.id, c512!.id);
  assert.is(store.countPooled('k'), 0);
});

test("recentClaimDisks: the disk sizes of a pool key's last claims, oldest first, whatever became of them", () => {
  const { store } = fresh();
  const sized = (disk: number) => ({ ...SPEC, resourceLimits: { ...SPEC.resourceLimits, disk } });
  const want = (disk: number) => ({ ...asked('n'), resourceLimits: { ...SPEC.resourceLimits, disk } });
  for (let i = 0; i < 4; i++) store.insert(record({ pooled: true, poolKey: 'k', workspace: '', createdMs: i + 1, spec: sized(256) }));
  store.insert(record({ pooled: true, poolKey: 'other', workspace: '', spec: sized(999) }));
  assert.equal(store.recentClaimDisks('k', 3), [], 'warm sandboxes are not claims');
  const first = store.claimPooled('k', 'ws9', want(1024), 7000, 9000);
  store.claimPooled('k', 'ws9', want(2048), 7001, 9000);
  store.claimPooled('k', 'ws9', want(512), 7002, 9000);
  store.claimPooled('other', 'ws9', want(64), 7003, 9000);
  store.transition(first!.record.id, 'stopping', 7004);
  assert.equal(store.recentClaimDisks('k', 3), [1024, 2048, 512]);
  assert.equal(store.recentClaimDisks('k', 2), [2048, 512], 'only the last n');
  assert.equal(store.recentClaimDisks('k', 0), []);
  assert.equal(store.recentClaimDisks('none', 3), []);
});

test("leavePool takes a warm sandbox out of the pool only while it is still pooled; a claimed one stays the user's", () => {
  const { store } = fresh();
  const [a, b, c] = [1, 2, 3].map((t) => record({ pooled: true, poolKey: 'k', workspace: '', createdMs: t }));
  const making = record({ pooled: true, poolKey: 'k', workspace: '', status: 'creating' });
  for (const r of [a!, b!, c!, making]) store.insert(r);
  const claimed = store.claimPooled('k', 'ws9', asked('mine'), 7000, 9000);
  assert.is(claimed?.record.id, a!.id);
  assert.is(store.leavePool(a!.id, 8000), null, "claimed meanwhile: not the pool's to remove");
  assert.is(store.byId(a!.id)?.status, 'running');
  const leaving = store.leavePool(b!.id, 8000);
  assert.is(leaving?.status, 'stopping');
  assert.is(store.leavePool(b!.id, 8001), null, 'already leaving');
  assert.is(store.claimPooled('k', 'ws9', asked('next'), 8002, 9000)?.record.id, c!.id, 'a leaving one is never claimed');
  assert.is(store.leavePool(making.id, 8003)?.status, 'failed', 'one half-made by an ended process');
  assert.is(store.leavePool('sbx_none', 8004), null);
});

test('a claimed sandbox belongs to the claiming workspace with its name and labels', () => {
  const { store } = fresh();
  const r = record({ pooled: true, poolKey: 'k', workspace: '' });
  store.insert(r);
  assert.is(store.claimPooled('other', 'ws9', asked('n'), 1, 2), null);
  const got = store.claimPooled('k', 'ws9', asked('mine', { team: 'a' }, 96), 7000, 9000)?.record;
  assert.ok(got);
  assert.is(got.pooled, false);
  assert.is(got.workspace, 'ws9');
  assert.is(got.name, 'mine');
  assert.equal(got.labels, { team: 'a' });
  assert.is(got.spec.name, 'mine');
  assert.equal(got.spec.labels, { team: 'a' });
  assert.is(got.spec.resourceLimits.memory, 96, "the record carries the request's limits, not the pool's");
  assert.is(got.createdMs, 7000);
  assert.is(got.deadlineMs, 9000);
  assert.equal(store.get('ws9', r.id), got);
  assert.is(store.get('ws1', r.id), null);
});

test('a sealed environment is kept with its record only and read back as given', () => {
  const { store } = fresh();
  const a = record();
  const b = record();
  store.insert(a);
  store.insert(b);
  assert.is(store.sealedEnvironment(a.id), null);
  store.setSealedEnvironment(a.id, 'v1.sealed');
  assert.is(store.sealedEnvironment(a.id), 'v1.sealed');
  assert.is(store.sealedEnvironment(b.id), null);
  assert.is(store.sealedEnvironment('sbx_missing'), null);
});

test('counts active records across workspaces and states of visible ones', () => {
  const { store } = fresh();
  store.insert(record({ status: 'creating' }));
  store.insert(record({ status: 'running', workspace: 'ws2' }));
  store.insert(record({ status: 'stopping', pooled: true, poolKey: 'k' }));
  store.insert(record({ status: 'stopped' }));
  assert.is(store.countActive(), 3);
  assert.equal(store.countByState(), { creating: 1, running: 1, stopped: 1 });
  assert.equal(
    store
      .inStates(['stopping', 'stopped'])
      .map((r) => r.status)
      .sort(),
    ['stopped', 'stopping'],
  );
});

test.run();
