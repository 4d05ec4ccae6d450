/**
 * Checkpoints over real HTTP against real sandboxes: the seed's bodies, file round trips, a
 * recreated sandbox, a restore that fails half-way, limits, hostile sandbox content, tenancy,
 * session deletion and a server restart.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { newId } from '../../../core/ids.ts';
import type { Caller } from '../../../runtime/sandbox/manager.ts';
import type { SandboxRecord } from '../../../runtime/store/sandboxes.ts';
import { ADMIN_PASSWORD, call, startApi, type Res, type TestApi } from '../../helpers/api.ts';
import { blobContents, blobDigests } from '../../helpers/orchestration.ts';
import { contentKey } from '../../../orchestration/checkpoints/blobs.ts';
import type { Orchestration } from '../../../orchestration/orchestration.ts';
import { BUSYBOX, sleep } from '../../helpers/runtime.ts';

const test = suite('api-checkpoints');
let api: TestApi;
let orch: Orchestration;
let me: Caller;

const MAX_BYTES = 8 * 1024 * 1024;
const MAX_PER_SESSION = 4;

test.before(async () => {
  api = await startApi({
    checkpointMaxPerSession: MAX_PER_SESSION,
    checkpointMaxBytes: MAX_BYTES,
    rateLimitSession: 100_000,
    rateLimitSandbox: 100_000,
  });
  orch = api.orch;
  const who = await call<{ data: { workspace: string } }>(api.url, 'GET', '/v1/auth/me', { token: api.adminToken });
  me = { workspace: who.body.data.workspace, actor: 'test' };
});
test.after(async () => {
  await api?.close();
});

type CheckpointView = {
  id: string;
  sessionId: string;
  data: Record<string, unknown>;
  size: { files: number; bytes: number; storedBytes: number };
  state: { departments: number };
  context: { windows: number; items: number };
  sandboxes: {
    sandboxId: string;
    status: string;
    mounts: {
      path: string;
      files: number;
      directories: number;
      symlinks: number;
      bytes: number;
      storedBytes: number;
      filesRead: number;
      skipped: number;
    }[];
  }[];
};
type RestoreView = {
  restored: Record<string, boolean>;
  sandboxes: {
    checkpointSandboxId: string;
    sandboxId: string;
    recreated: boolean;
    mounts: { added: number; removed: number; kept: number }[];
  }[];
};

const post = <T>(p: string, body?: unknown, token = api.adminToken) => call<{ data: T }>(api.url, 'POST', p, { token, body });
const get = <T>(p: string, token = api.adminToken) => call<{ data: T }>(api.url, 'GET', p, { token });
const del = (p: string, token = api.adminToken) => call(api.url, 'DELETE', p, { token });

const newSession = (name = 'checkpoint test') => orch.sessions.create(me, { name });
const sandboxIn = (sessionId: string, body: Record<string, unknown> = {}): Promise<SandboxRecord> =>
  api.rt.sandboxes.create({ image: BUSYBOX, ...body }, me, { owner: { sessionId, departmentId: null, environmentId: null } });
async function sh(id: string, script: string): Promise<string> {
  const r = await api.rt.executor.run(me, id, { command: ['sh', '-c', script] });
  assert.is(r.exitCode, 0, `${script}: ${r.stderr}`);
  return r.stdout;
}
async function checkpoint(sessionId: string, name = 'cp'): Promise<CheckpointView> {
  const r = await post<CheckpointView>('/v1/checkpoints', { sessionId, name });
  assert.is(r.status, 201, r.text);
  return r.body.data;
}
async function restore(id: string, body: unknown = {}): Promise<Res<{ data: RestoreView }>> {
  return post<RestoreView>(`/v1/checkpoints/${id}/restore`, body);
}
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
/** The key this test's workspace stores `s` under. */
const key = (s: string | Buffer, workspace = me.workspace) => contentKey(workspace, sha(s));
const blobSet = () => blobDigests(api.rt);

test('the seed body creates a checkpoint that reads back, lists by session, and restores with the seed body', async () => {
  const s = newSession();
  const seed = {
    sessionId: s.id,
    name: 'Development Milestone',
    description: 'Checkpoint after completing user authentication',
    data: { committedFiles: ['auth.js', 'database.js'], currentHash: 'abc123', metadata: { milestone: 'v1.0.0-alpha' } },
  };
  const r = await post<CheckpointView & { name: string; description: string }>('/v1/checkpoints', seed);
  assert.is(r.status, 201, r.text);
  assert.match(r.body.data.id, /^ckp_[A-Za-z0-9_-]{16}$/);
  assert.is(r.body.data.sessionId, s.id);
  assert.is(r.body.data.name, seed.name);
  assert.is(r.body.data.description, seed.description);
  assert.equal(r.body.data.data, seed.data);
  const one = await get<CheckpointView>(`/v1/checkpoints/${r.body.data.id}`);
  assert.is(one.status, 200, one.text);
  assert.equal(one.body.data, r.body.data);
  const list = await get<{ items: CheckpointView[]; total: number }>(`/v1/checkpoints?sessionId=${s.id}&limit=10`);
  assert.is(list.status, 200, list.text);
  assert.equal(
    list.body.data.items.map((c) => c.id),
    [r.body.data.id],
  );
  const back = await restore(r.body.data.id, { includeState: true, includeContext: true, includeMessages: true });
  assert.is(back.status, 200, back.text);
  // The session's chat messages (none here) are part of what comes back.
  assert.equal(back.body.data.restored, { state: true, context: true, messages: true, files: false });
});

test('bad bodies are refused naming the field; a session of nobody is a 400 on sessionId', async () => {
  const s = newSession();
  const unknown = await post('/v1/checkpoints', { sessionId: s.id, name: 'x', colour: 'red' });
  assert.is(unknown.status, 400);
  assert.is(unknown.body.error?.details.field, 'colour');
  const missing = await post('/v1/checkpoints', { sessionId: 'ses_AAAAAAAAAAAAAAAA', name: 'x' });
  assert.is(missing.status, 400);
  assert.is(missing.body.error?.details.field, 'sessionId');
  const badRestore = await post(`/v1/checkpoints/${(await checkpoint(s.id)).id}/restore`, { includeFiles: 'yes' });
  assert.is(badRestore.status, 400);
  assert.is(badRestore.body.error?.details.field, 'includeFiles');
});

test('a round trip puts back changed, deleted and nested files, removes added ones, and leaves unchanged files in place', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  await sh(
    sb.id,
    'cd /workspace && mkdir -p src/lib empty && echo "console.log(1)" > src/main.js && echo lib > src/lib/util.js && printf "keep me" > README && chmod 640 README && dd if=/dev/urandom of=blob.bin bs=1024 count=300 2>/dev/null',
  );
  const before = await sh(sb.id, 'cd /workspace && find . | sort && md5sum blob.bin && stat -c "%a %n" README');
  // Files written more than a second before the listing are trusted as unchanged next time.
  await sleep(2100);
  const cp = await checkpoint(s.id);
  const m = cp.sandboxes[0]!.mounts[0]!;
  assert.is(m.path, '/workspace');
  assert.is(m.files, 4);
  assert.is(m.directories, 3);
  assert.is(cp.size.bytes, 15 + 4 + 7 + 300 * 1024);

  await sh(
    sb.id,
    'cd /workspace && echo changed > src/main.js && rm -rf src/lib && rm README && echo new > added.txt && mkdir -p newdir/deep && echo x > newdir/deep/y && chmod 700 empty',
  );
  const r = await restore(cp.id);
  assert.is(r.status, 200, r.text);
  const sbr = r.body.data.sandboxes[0]!;
  assert.is(sbr.sandboxId, sb.id);
  assert.is(sbr.recreated, false);
  // blob.bin was not changed: it stays where it is.
  assert.ok(sbr.mounts[0]!.kept >= 1, JSON.stringify(sbr));
  const after = await sh(sb.id, 'cd /workspace && find . | sort && md5sum blob.bin && stat -c "%a %n" README');
  assert.is(after, before);
  assert.is(await sh(sb.id, 'cat /workspace/src/main.js /workspace/src/lib/util.js /workspace/README'), 'console.log(1)\nlib\nkeep me');
  assert.is(await sh(sb.id, 'stat -c %a /workspace/empty'), '755\n');
  assert.is(await sh(sb.id, 'ls -a /workspace | grep -c director-restore || true'), '0\n');
});

test('a second checkpoint of an unchanged workspace reads no file and stores no new content', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  await sh(
    sb.id,
    'cd /workspace && mkdir d && for i in 1 2 3 4 5 6 7 8; do echo "file $i" > d/f$i; done && dd if=/dev/urandom of=big bs=1024 count=512 2>/dev/null',
  );
  await sleep(2100);
  const first = await checkpoint(s.id, 'first');
  assert.is(first.sandboxes[0]!.mounts[0]!.filesRead, 9);
  assert.ok(first.size.storedBytes >= 512 * 1024);
  const second = await checkpoint(s.id, 'second');
  assert.is(second.sandboxes[0]!.mounts[0]!.filesRead, 0);
  assert.is(second.size.storedBytes, 0);
  assert.is(second.size.bytes, first.size.bytes);
  // One changed file is the only one read again.
  await sh(sb.id, 'echo changed > /workspace/d/f3');
  const third = await checkpoint(s.id, 'third');
  assert.is(third.sandboxes[0]!.mounts[0]!.filesRead, 1);
  assert.is(third.size.storedBytes, 8);
});

test('a file rewritten in the second of a checkpoint (same size: the same listing line) is read again by the next one, which restores the new content', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  // The rewrite leaves the file's listing line as it was (inode, size, mtime and ctime, to the
  // second: checked around it), so only the second of margin tells the next checkpoint to read it
  // again. Started at the top of a second; tried again (at most five times) when the rewrite
  // changed the line after all.
  const STAT = "stat -c '%i %s %Y %Z' /workspace/f";
  for (let attempt = 1; ; attempt++) {
    while (Date.now() % 1000 > 150) await sleep(5);
    await sh(sb.id, 'echo aaaa > /workspace/f');
    const first = await checkpoint(s.id, 'first');
    const [before, after] = (await sh(sb.id, `${STAT}; echo bbbb > /workspace/f; ${STAT}`)).trim().split('\n');
    const next = await checkpoint(s.id, 'next');
    if (before === after || attempt === 5) {
      assert.is(after, before, 'five rewrites changed the listing line');
      assert.is(next.sandboxes[0]!.mounts[0]!.filesRead, 1);
      await sh(sb.id, 'echo cccc > /workspace/f');
      assert.is((await restore(next.id)).status, 200);
      assert.is(await sh(sb.id, 'cat /workspace/f'), 'bbbb\n');
      assert.is((await restore(first.id)).status, 200);
      assert.is(await sh(sb.id, 'cat /workspace/f'), 'aaaa\n');
      return;
    }
    for (const c of [first, next]) assert.is((await del(`/v1/checkpoints/${c.id}`)).status, 200);
  }
});

test('checkpoints of an unchanged workspace share their references: a blob stays while any checkpoint refers to it', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  await sh(sb.id, 'cd /workspace && echo one > a && dd if=/dev/urandom of=big bs=1024 count=300 2>/dev/null');
  const bigSha = (await sh(sb.id, 'sha256sum /workspace/big')).split(' ')[0]!;
  const big = contentKey(me.workspace, bigSha);
  await sleep(2100);
  const first = await checkpoint(s.id, 'first');
  const second = await checkpoint(s.id, 'second');
  assert.is(second.size.storedBytes, 0);
  assert.ok(blobSet().has(big));
  // The checkpoint that stored the references goes; the second one still refers to the same blobs.
  assert.is((await del(`/v1/checkpoints/${first.id}`)).status, 200);
  assert.ok(blobSet().has(big), 'still referenced by the second checkpoint');
  await sh(sb.id, 'echo spoiled > /workspace/big && rm /workspace/a');
  const r = await restore(second.id);
  assert.is(r.status, 200, r.text);
  assert.is((await sh(sb.id, 'sha256sum /workspace/big')).split(' ')[0], bigSha);
  assert.is(await sh(sb.id, 'cat /workspace/a'), 'one\n');
  assert.is((await del(`/v1/checkpoints/${second.id}`)).status, 200);
  assert.not.ok(blobSet().has(big), 'gone with the last checkpoint that referred to it');
});

test('a restore that waited for its turn answers 404 when its checkpoint was deleted meanwhile, and changes nothing', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  await sh(sb.id, 'cd /workspace && echo one > a && dd if=/dev/urandom of=big bs=1024 count=2048 2>/dev/null');
  const cp = await orch.checkpoints.create(me, { sessionId: s.id, name: 'target' });
  await sh(sb.id, 'echo added > /workspace/new');
  // A checkpoint in progress holds the session's turn; the restore queues behind it, then its checkpoint is deleted.
  const busy = orch.checkpoints.create(me, { sessionId: s.id, name: 'busy' });
  const restoring = orch.checkpoints.restore(me, cp.id, {}).then(
    () => null,
    (err: unknown) => err as { code?: string },
  );
  orch.checkpoints.delete(me, cp.id);
  assert.is((await restoring)?.code, 'NOT_FOUND');
  await busy;
  assert.is(await sh(sb.id, 'cat /workspace/new'), 'added\n');
});

test('a deleted sandbox is recreated from its spec and gets its files back', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id, { securityPolicy: { allowedPaths: ['/workspace', '/data'] }, resourceLimits: { memory: 96 } });
  await sh(sb.id, 'echo work > /workspace/w.txt && mkdir /data/sub && echo data > /data/sub/d.txt && ln -s sub/d.txt /data/link');
  const cp = await checkpoint(s.id);
  assert.equal(
    cp.sandboxes[0]!.mounts.map((m) => [m.path, m.files, m.symlinks]),
    [
      ['/data', 1, 1],
      ['/workspace', 1, 0],
    ],
  );
  const gone = await del(`/v1/sandboxes/${sb.id}`);
  assert.is(gone.status, 200, gone.text);
  const r = await restore(cp.id);
  assert.is(r.status, 200, r.text);
  const back = r.body.data.sandboxes[0]!;
  assert.is(back.recreated, true);
  assert.is(back.checkpointSandboxId, sb.id);
  assert.is.not(back.sandboxId, sb.id);
  const rec = api.rt.sandboxes.deps.store.byId(back.sandboxId)!;
  assert.is(rec.status, 'running');
  assert.is(rec.owner.sessionId, s.id);
  assert.is(rec.spec.resourceLimits.memory, 96);
  assert.equal(rec.spec.securityPolicy.allowedPaths, ['/workspace', '/data']);
  assert.is(
    await sh(back.sandboxId, 'cat /workspace/w.txt /data/sub/d.txt /data/link && readlink /data/link'),
    'work\ndata\ndata\nsub/d.txt\n',
  );
  assert.is(rec.labels['director.restored-from'], sb.id);
  // Restoring again goes into the sandbox that stands in for the deleted one, not into yet another.
  await sh(back.sandboxId, 'echo later > /workspace/w.txt');
  const again = await restore(cp.id);
  assert.is(again.status, 200, again.text);
  assert.equal([again.body.data.sandboxes[0]!.sandboxId, again.body.data.sandboxes[0]!.recreated], [back.sandboxId, false]);
  assert.is(await sh(back.sandboxId, 'cat /workspace/w.txt'), 'work\n');
  assert.is(api.rt.sandboxes.list(me, { sessionId: s.id, limit: 10, offset: 0 }).total, 1);
});

test('a restore that fails half-way leaves the sandbox exactly as it was before the restore', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  await sh(sb.id, 'cd /workspace && mkdir a && echo original > a/x && echo keep > b');
  const cp = await checkpoint(s.id);
  // a/x is swapped back first; then removing z fails: a directory without write permission cannot be moved.
  await sh(sb.id, 'cd /workspace && echo modified > a/x && echo extra > c && mkdir z && echo in-z > z/f && chmod 555 z');
  const state = 'cd /workspace && find . | sort && cat a/x b c z/f && stat -c "%a %n" z a';
  const before = await sh(sb.id, state);
  const r = await restore(cp.id);
  assert.is(r.status, 422, r.text);
  assert.is(r.body.error?.details.reverted, true, r.text);
  assert.match(r.body.error?.message ?? '', /undone/);
  assert.is(await sh(sb.id, state), before);
  // With the obstacle gone the same restore goes through.
  await sh(sb.id, 'chmod 755 /workspace/z');
  const ok = await restore(cp.id);
  assert.is(ok.status, 200, ok.text);
  assert.is(await sh(sb.id, 'cd /workspace && find . | sort && cat a/x b'), '.\n./a\n./a/x\n./b\noriginal\nkeep\n');
});

test('a restore that does not fit beside the current files (413), or whose stored file is gone (500), changes nothing', async () => {
  const s = newSession();
  // /workspace gets half of 4 MiB: the 1.2 MB file cannot be staged next to its current version.
  const sb = await sandboxIn(s.id, { resourceLimits: { disk: 4 } });
  await sh(
    sb.id,
    `dd if=/dev/urandom of=/workspace/big bs=1024 count=1200 2>/dev/null && echo ${newId('itm')} > /workspace/a && echo ${newId('itm')} > /workspace/z`,
  );
  const cp = await checkpoint(s.id);
  await sh(
    sb.id,
    'dd if=/dev/urandom of=/workspace/big bs=1024 count=1200 2>/dev/null && echo new > /workspace/a && echo new > /workspace/z',
  );
  const state = 'cd /workspace && ls -a && md5sum big a z';
  const before = await sh(sb.id, state);
  const full = await restore(cp.id);
  assert.is(full.status, 413, full.text);
  assert.is(full.body.error?.details.reverted, true);
  assert.is(await sh(sb.id, state), before);

  await sh(sb.id, 'rm /workspace/big');
  // The last file staged loses its stored content: the archive breaks after the others were sent.
  const manifest = JSON.parse(blobContentsMap().get(orch.checkpoints.get(me, cp.id).files[0]!.mounts[0]!.manifest)!.toString('utf8')) as {
    entries: { path: string; digest?: string }[];
  };
  api.rt.db.sql.prepare('DELETE FROM checkpoint_chunks WHERE digest = ?').run(manifest.entries.find((e) => e.path === 'z')!.digest!);
  const before2 = await sh(sb.id, 'cd /workspace && ls -a && md5sum a z');
  const broken = await restore(cp.id);
  assert.is(broken.status, 500, broken.text);
  assert.is(await sh(sb.id, 'cd /workspace && ls -a && md5sum a z'), before2);
});

const blobContentsMap = () => new Map(blobContents(api.rt));

test('limits: one checkpoint over the count is a 409, files over the size a 413, and neither leaves a blob behind', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  for (let i = 0; i < MAX_PER_SESSION; i++) {
    await sh(sb.id, `echo ${newId('itm')} > /workspace/f${i}`);
    await checkpoint(s.id, `n${i}`);
  }
  await sh(sb.id, `echo ${newId('itm')} > /workspace/unique`);
  const blobs = blobSet();
  const full = await post('/v1/checkpoints', { sessionId: s.id, name: 'one too many' });
  assert.is(full.status, 409, full.text);
  assert.is(full.body.error?.details.setting, 'DIRECTOR_CHECKPOINT_MAX_PER_SESSION');
  assert.is(full.body.error?.details.limit, MAX_PER_SESSION);
  assert.equal(blobSet(), blobs);

  // Two sandboxes: the first one's new files are stored before the second one's are found too large.
  const s2 = newSession();
  const small = await sandboxIn(s2.id, { name: 'a-small' });
  const large = await sandboxIn(s2.id, { name: 'b-large' });
  await sh(small.id, `echo ${newId('itm')} > /workspace/fresh && dd if=/dev/urandom of=/workspace/r bs=1024 count=64 2>/dev/null`);
  await sh(large.id, `dd if=/dev/zero of=/workspace/big bs=1048576 count=9 2>/dev/null`);
  const before = blobSet();
  const tooBig = await post('/v1/checkpoints', { sessionId: s2.id, name: 'too big' });
  assert.is(tooBig.status, 413, tooBig.text);
  assert.is(tooBig.body.error?.details.setting, 'DIRECTOR_CHECKPOINT_MAX_BYTES');
  assert.match(tooBig.body.error?.message ?? '', String(MAX_BYTES));
  assert.equal(blobSet(), before);
  assert.is(readdirTmp(), 0);
  const list = await get<{ total: number }>(`/v1/checkpoints?sessionId=${s2.id}`);
  assert.is(list.body.data.total, 0);
});

/** Temp files of the blob store (a blob being written): none once a request has answered. */
const readdirTmp = () => {
  const dir = path.join(api.rt.dataDir, 'checkpoints', 'tmp');
  return existsSync(dir) ? readdirSync(dir).length : 0;
};

test('hostile content: a link to /etc/shadow or /etc/passwd is kept as a link, a fifo is skipped, a huge sparse file is refused unread', async () => {
  const s = newSession();
  const sb = await sandboxIn(s.id);
  await sh(
    sb.id,
    'cd /workspace && ln -s /etc/shadow shadow && ln -s /etc/passwd passwd && ln -s / root && mkfifo pipe && echo ok > plain',
  );
  const cp = await checkpoint(s.id);
  const m = cp.sandboxes[0]!.mounts[0]!;
  assert.equal([m.files, m.symlinks, m.skipped], [1, 3, 1]);
  // Nothing behind a link was read: no stored blob holds /etc/passwd's content.
  for (const [digest, content] of blobContents(api.rt)) {
    assert.not.ok(content.toString('utf8').includes('root:x:0:0'), `blob ${digest} holds /etc/passwd`);
  }
  await sh(sb.id, 'cd /workspace && rm shadow passwd root pipe plain');
  const r = await restore(cp.id);
  assert.is(r.status, 200, r.text);
  assert.is(
    await sh(sb.id, 'cd /workspace && for l in shadow passwd root; do readlink $l; done && cat plain && ls -a'),
    '/etc/shadow\n/etc/passwd\n/\nok\n.\n..\npasswd\nplain\nroot\nshadow\n',
  );

  await sh(sb.id, 'truncate -s 900M /workspace/huge');
  const blobs = blobSet();
  const huge = await post('/v1/checkpoints', { sessionId: s.id, name: 'huge' });
  assert.is(huge.status, 413, huge.text);
  // Refused from the listing (its size), before any content was read.
  assert.match(huge.body.error?.message ?? '', /holds 943718400 bytes/);
  assert.equal(blobSet(), blobs);
  await sh(sb.id, 'rm /workspace/huge');

  // A name with a line break would make the listing ambiguous: refused, nothing stored.
  await sh(sb.id, 'touch "/workspace/bad\nname"');
  const bad = await post('/v1/checkpoints', { sessionId: s.id, name: 'bad name' });
  assert.is(bad.status, 422, bad.text);
  assert.equal(blobSet(), blobs);
});

test("another workspace's checkpoint id answers like a missing one on every route, and is recorded", async () => {
  const s = newSession();
  const cp = await checkpoint(s.id);
  const ws = await call(api.url, 'POST', '/v1/workspaces', { token: api.adminToken, body: { name: 'ckp-tenant-b' } });
  assert.is(ws.status, 201, ws.text);
  const headers = { 'x-director-workspace': 'ckp-tenant-b' };
  const user = await call(api.url, 'POST', '/v1/users', {
    token: api.adminToken,
    headers,
    body: { username: 'ckp-dev-b', password: 'ckp-dev-b-password-1', role: 'developer' },
  });
  assert.is(user.status, 201, user.text);
  const login = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'ckp-dev-b', password: 'ckp-dev-b-password-1' },
  });
  const token = login.body.data.token;
  const missing = 'ckp_AAAAAAAAAAAAAAAA';
  const norm = (r: Res, id: string) => JSON.stringify({ status: r.status, error: r.body.error }).replaceAll(id, '<id>');
  for (const [what, f] of [
    ['get', (id: string) => get(`/v1/checkpoints/${id}`, token)],
    ['delete', (id: string) => del(`/v1/checkpoints/${id}`, token)],
    ['restore', (id: string) => post(`/v1/checkpoints/${id}/restore`, {}, token)],
  ] as const) {
    const foreign = await f(cp.id);
    assert.is(foreign.status, 404, `${what}: ${foreign.text}`);
    assert.is(norm(foreign, cp.id), norm(await f(missing), missing), what);
  }
  const theirs = await get<{ total: number }>(`/v1/checkpoints?sessionId=${s.id}`, token);
  assert.is(theirs.body.data.total, 0);
  assert.is((await get(`/v1/checkpoints/${cp.id}`)).status, 200, 'the checkpoint was touched');
  api.rt.events.flush();
  const n = api.rt.db.sql
    .prepare("SELECT count(*) AS n FROM events WHERE type = 'cross_workspace_attempt' AND details LIKE ?")
    .get(`%${cp.id}%`) as { n: number };
  assert.is(n.n, 3);
});

test('deleting a session removes its checkpoints and the blobs only they used; a blob another session uses stays', async () => {
  const shared = `shared ${newId('itm')}\n`;
  const own = `own ${newId('itm')}\n`;
  const keep = newSession('keeps');
  const kept = await sandboxIn(keep.id);
  await sh(kept.id, `printf '${shared}' > /workspace/s`);
  const other = await checkpoint(keep.id);
  const s = newSession('goes');
  const sb = await sandboxIn(s.id);
  await sh(sb.id, `printf '${shared}' > /workspace/s && printf '${own}' > /workspace/o`);
  const cp = await checkpoint(s.id);
  assert.ok(blobSet().has(key(own)) && blobSet().has(key(shared)));
  await orch.sessions.delete(me, s.id);
  assert.is((await get(`/v1/checkpoints/${cp.id}`)).status, 404);
  assert.not.ok(blobSet().has(key(own)), 'the blob only the deleted session used is still on disk');
  assert.ok(blobSet().has(key(shared)), 'a blob another session uses was removed');
  assert.is((await get(`/v1/checkpoints/${other.id}`)).status, 200);
  // Deleting a checkpoint removes what only it used too.
  assert.is((await del(`/v1/checkpoints/${other.id}`)).status, 200);
  assert.not.ok(blobSet().has(key(shared)));
});

test("content is shared within a workspace only: another workspace's copy of a file is new to it (no oracle), another session's in the same workspace is not", async () => {
  const content = `a file someone may guess ${newId('itm')}\n`.repeat(100);
  const write = (caller: Caller, id: string) =>
    api.rt.executor.run(caller, id, { command: ['sh', '-c', `printf '%s' '${content}' > /workspace/guess`] });
  const a = newSession('a');
  await write(me, (await sandboxIn(a.id)).id);
  assert.ok((await checkpoint(a.id)).size.storedBytes >= content.length);
  // Same workspace, another session: the content costs nothing again.
  const a2 = newSession('a2');
  await write(me, (await sandboxIn(a2.id)).id);
  assert.ok((await checkpoint(a2.id)).size.storedBytes < content.length, 'the same workspace stored its content twice');
  // Another workspace: stored anew, so what it is told says nothing about this workspace's files.
  const other: Caller = { workspace: 'wsp_ckpOtherTenant', actor: 'test' };
  const b = orch.sessions.create(other, { name: 'b' });
  const sbB = await api.rt.sandboxes.create({ image: BUSYBOX }, other, {
    owner: { sessionId: b.id, departmentId: null, environmentId: null },
  });
  await write(other, sbB.id);
  const cpB = await orch.checkpoints.create(other, { sessionId: b.id, name: 'b' });
  const storedB = cpB.files.reduce((n, f) => n + f.mounts.reduce((m, x) => m + x.newBytes, 0), 0);
  assert.ok(storedB >= content.length, `another workspace was told its content was already stored (${storedB} bytes new)`);
  assert.ok(blobSet().has(key(content)) && blobSet().has(key(content, other.workspace)));
  await orch.sessions.delete(other, b.id);
  assert.not.ok(blobSet().has(key(content, other.workspace)), "the other workspace's copy outlived its session");
  assert.ok(blobSet().has(key(content)), "this workspace's copy went with the other's");
});

test('state and context come back as asked; includeState false leaves the session alone', async () => {
  const s = newSession('original name');
  const now = Date.now();
  orch.departmentStore.insert({
    id: newId('dep'),
    workspace: me.workspace,
    sessionId: s.id,
    name: 'reviewers',
    domain: 'code-review',
    capabilities: [],
    config: { maxConcurrentTasks: 5 },
    createdMs: now,
    updatedMs: now,
    deletedMs: null,
  });
  const ctx = newId('ctx');
  orch.contextStore.insertWindow({
    id: ctx,
    workspace: me.workspace,
    sessionId: s.id,
    name: 'notes',
    config: { maxSize: 10, retentionPolicy: {} },
    createdMs: now,
    updatedMs: now,
  });
  const item = { contextId: ctx, type: 'text' as const, metadata: {}, importance: 0.5, sizeBytes: 5, createdMs: now };
  orch.contextStore.insertItem({ ...item, id: newId('itm'), content: 'first' });
  const cp = await checkpoint(s.id);
  assert.equal([cp.state.departments, cp.context.windows, cp.context.items], [1, 1, 1]);
  orch.sessionStore.patch(s.id, Date.now(), { name: 'renamed' });
  orch.departmentStore.deleteOfSession(s.id, Date.now());
  orch.contextStore.insertItem({ ...item, id: newId('itm'), content: 'later' });

  const partial = await restore(cp.id, { includeState: false });
  assert.is(partial.status, 200, partial.text);
  assert.is(orch.sessionStore.byId(s.id)!.name, 'renamed');
  assert.equal(
    orch.contextStore.items(ctx, 10, 0).items.map((i) => i.content),
    ['first'],
  );
  const full = await restore(cp.id);
  assert.is(full.status, 200, full.text);
  assert.is(orch.sessionStore.byId(s.id)!.name, 'original name');
  assert.equal(
    orch.departmentStore.ofSession(s.id).map((d) => d.name),
    ['reviewers'],
  );
});

test('a paused session can be checkpointed but not restored; an ended one neither', async () => {
  const s = newSession();
  const cp = await checkpoint(s.id);
  await orch.sessions.update(me, s.id, { status: 'paused' });
  await checkpoint(s.id, 'while paused');
  const r = await restore(cp.id);
  assert.is(r.status, 409, r.text);
  await orch.sessions.update(me, s.id, { status: 'completed' });
  const ended = await post('/v1/checkpoints', { sessionId: s.id, name: 'ended' });
  assert.is(ended.status, 409, ended.text);
  // A completed session keeps its checkpoints readable.
  assert.is((await get(`/v1/checkpoints/${cp.id}`)).status, 200);
});

test('a restarted server keeps checkpoints restorable; one written before content was kept per workspace restores, and its files are read again, never taken over', async () => {
  const first = await startApi({});
  const o1 = first.orch;
  const { dataDir, config } = first.rt;
  let second: TestApi | null = null;
  let firstClosed = false;
  try {
    const who = await call<{ data: { workspace: string } }>(first.url, 'GET', '/v1/auth/me', { token: first.adminToken });
    const caller = { workspace: who.body.data.workspace, actor: 'test' };
    const s = o1.sessions.create(caller, { name: 'survives' });
    const sb = await first.rt.sandboxes.create({ image: BUSYBOX }, caller, {
      owner: { sessionId: s.id, departmentId: null, environmentId: null },
    });
    // `u` stays unchanged throughout (written over a second before the checkpoint lists it).
    await first.rt.executor.run(caller, sb.id, { command: ['sh', '-c', 'echo unchanged > /workspace/u'] });
    await sleep(2100);
    await first.rt.executor.run(caller, sb.id, { command: ['sh', '-c', 'echo before > /workspace/f'] });
    const cp = await call<{ data: { id: string } }>(first.url, 'POST', '/v1/checkpoints', {
      token: first.adminToken,
      body: { sessionId: s.id, name: 'before restart' },
    });
    assert.is(cp.status, 201, cp.text);
    const manifestKey = o1.checkpoints.get(caller, cp.body.data.id).files[0]!.mounts[0]!.manifest;
    // Stop the server without removing its sandboxes or data dir, then start another on them.
    await first.stop();
    firstClosed = true;
    // Made as a Director before per-workspace keys made it: a version 1 manifest (plain sha256 keys, shared).
    const db = openDb(dataDir);
    try {
      const row = db.sql.prepare('SELECT content FROM checkpoint_chunks WHERE digest = ?').get(manifestKey) as { content: Uint8Array };
      const old = { ...(JSON.parse(Buffer.from(row.content).toString('utf8')) as object), version: 1 };
      db.sql.prepare('UPDATE checkpoint_chunks SET content = ? WHERE digest = ?').run(Buffer.from(JSON.stringify(old)), manifestKey);
    } finally {
      db.close();
    }
    second = await startApi({ dataDir, runtimeName: config.runtimeName });
    const login = await call<{ data: { token: string } }>(second.url, 'POST', '/v1/auth/login', {
      body: { username: 'admin', password: ADMIN_PASSWORD },
    });
    await second.rt.executor.run(caller, sb.id, { command: ['sh', '-c', 'echo after > /workspace/f && echo extra > /workspace/g'] });
    const r = await call<{ data: RestoreView }>(second.url, 'POST', `/v1/checkpoints/${cp.body.data.id}/restore`, {
      token: login.body.data.token,
      body: {},
    });
    assert.is(r.status, 200, r.text);
    assert.is(r.body.data.sandboxes[0]!.sandboxId, sb.id);
    const out = await second.rt.executor.run(caller, sb.id, { command: ['sh', '-c', 'cat /workspace/f; ls /workspace'] });
    assert.is(out.stdout, 'before\nf\nu\n');
    // `u` is unchanged since that checkpoint, but its blob is keyed by content alone: read again, stored under the workspace's key.
    const next = await second.orch.checkpoints.create(caller, { sessionId: s.id, name: 'after restart' });
    assert.is(next.files[0]!.mounts[0]!.filesRead, 2, 'a file was taken over from a version 1 manifest');
  } finally {
    if (second) await second.close();
    else if (firstClosed) await first.rt.cleanup();
    else await first.close();
  }
});

test.run();
