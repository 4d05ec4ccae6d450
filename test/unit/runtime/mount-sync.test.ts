/**
 * MountSync end to end on the host, without an engine: the script runs in a local `sh` over a
 * temp directory standing for the mount, with busybox's tools (as in director/busybox) and with
 * GNU's (as in director/base), and with Director's agent binary as the tree tool (its
 * `tree capture` and `tree list`, images/agent/tree.c) beside busybox. Failures are injected
 * with an `mv` that breaks part-way.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  lstatSync,
  readlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { agentBinary, localOpener } from '../../helpers/local-exec.ts';
import { packTree } from '../../../runtime/sandbox/files.ts';
import { MountSync, RestoreFailedError, type OpenOptions, type SyncWanted } from '../../../runtime/sandbox/mount-sync.ts';
import { TREE_SCRIPT } from '../../../runtime/sandbox/tree-script.ts';
import { parseListing, type Listing } from '../../../runtime/sandbox/tree-listing.ts';
import { planRestore } from '../../../runtime/sandbox/tree-plan.ts';
import type { SandboxRecord } from '../../../runtime/store/sandboxes.ts';

const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = (prefix: string) => {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

/** A PATH holding busybox applets, or the host's GNU tools; `mvFailAt` makes the n-th `mv` move its first source only, then fail. */
function toolset(kind: 'busybox' | 'gnu', mvFailAt?: number): { PATH: string } {
  const bin = temp('director-tools-');
  if (kind === 'busybox') {
    for (const a of ['sh', 'find', 'stat', 'date', 'xargs', 'tar', 'mv', 'chmod', 'rm', 'printf', 'cat'])
      symlinkSync('/bin/busybox', path.join(bin, a));
  }
  if (mvFailAt !== undefined) {
    const real = kind === 'busybox' ? '/bin/busybox mv' : '/bin/mv';
    rmSync(path.join(bin, 'mv'), { force: true });
    writeFileSync(
      path.join(bin, 'mv'),
      `#!/bin/sh\nn=$(cat ${bin}/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ${bin}/count\n` +
        `if [ "$n" = ${mvFailAt} ]; then shift; dst=; for a do dst=$a; done; ${real} -f "$1" "$dst"; echo 'mv: injected failure' >&2; exit 1; fi\n` +
        `exec ${real} "$@"\n`,
    );
    chmodSync(path.join(bin, 'mv'), 0o755);
  }
  return { PATH: kind === 'busybox' ? bin : `${bin}:/usr/bin:/bin` };
}

type Kind = 'busybox' | 'gnu' | 'agent';

/** A MountSync over a local shell with `kind`'s tools (`agent`: busybox's, and the agent binary as the tree tool). */
function syncOf(kind: Kind, mvFailAt?: number, opts: { uid?: number } = {}): MountSync {
  const tools = toolset(kind === 'agent' ? 'busybox' : kind, mvFailAt);
  return new MountSync(opener(tools, opts), kind === 'agent' ? { treeTool: () => agentBinary() } : {});
}

const opener = localOpener;

async function collect(src: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of src) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const rec = { id: 'sbx_local', status: 'running', containerId: 'local' } as SandboxRecord;
const LIMITS = { maxEntries: 1000, timeoutMs: 20_000 };

/** Everything in a directory: path → kind and content (files), target (links), mode (directories). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(root, p));
      if (st.isSymbolicLink()) out[p] = `-> ${readlinkSync(path.join(root, p))}`;
      else if (st.isDirectory()) {
        out[p] = `dir ${(st.mode & 0o777).toString(8)}`;
        walk(p);
      } else if (st.isFile()) out[p] = `file ${(st.mode & 0o777).toString(8)} ${readFileSync(path.join(root, p), 'utf8')}`;
      else out[p] = 'other';
    }
  };
  walk('');
  return out;
}

function build(root: string, spec: Record<string, string>) {
  for (const [p, v] of Object.entries(spec)) {
    const full = path.join(root, p);
    mkdirSync(path.dirname(full), { recursive: true });
    if (v === '/') mkdirSync(full, { recursive: true });
    else if (v.startsWith('->')) symlinkSync(v.slice(3), full);
    else writeFileSync(full, v);
  }
}

/** Captures `root` whole: the listing and every file's content, as the wanted tree of a later restore. */
async function capture(sync: MountSync, root: string): Promise<{ listing: Listing; wanted: SyncWanted[]; read: string[] }> {
  const content = new Map<string, Buffer>();
  const targets = new Map<string, string>();
  const read: string[] = [];
  const { listing } = await sync.capture(rec, root, {
    ...LIMITS,
    select: (l) => ({ paths: l.entries.filter((e) => e.kind === 'file' || e.kind === 'symlink').map((e) => e.path), maxBytes: 1 << 20 }),
    onEntry: async (e) => {
      read.push(`${e.path}:${e.type}`);
      if (e.type === 'symlink') targets.set(e.path, e.linkname!);
      else if (e.type === 'hardlink') content.set(e.path, content.get(e.linkname!)!);
      else {
        const chunks: Buffer[] = [];
        for await (const c of e.stream) chunks.push(c);
        content.set(e.path, Buffer.concat(chunks));
      }
    },
  });
  const wanted: SyncWanted[] = listing.entries
    .filter((e) => e.kind === 'file' || e.kind === 'directory' || e.kind === 'symlink')
    .map((e) => ({
      path: e.path,
      kind: e.kind as SyncWanted['kind'],
      mode: e.mode,
      ...(e.kind === 'file' ? { size: content.get(e.path)!.length, content: () => Promise.resolve(content.get(e.path)!) } : {}),
      ...(e.kind === 'symlink' ? { target: targets.get(e.path)! } : {}),
    }));
  return { listing, wanted, read };
}

const restore = (sync: MountSync, root: string, wanted: SyncWanted[], commit = true) =>
  sync.restore(rec, root, {
    ...LIMITS,
    commit,
    plan: (l) => planRestore({ current: l.entries, wanted, keep: () => false, maxDirtyDirs: 32 }),
  });

const NOBODY = 65534;

/** `root` and the tool directories opened to an unprivileged user (the tests run as root, who can read anything). */
function forNobody(root: string): void {
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, root]);
}

for (const kind of ['busybox', 'gnu', 'agent'] as const) {
  test(`${kind}: capture lists the tree and reads files, symlinks (as links) and hard links; fifos are listed, not read`, async () => {
    const root = temp('director-mount-');
    build(root, { 'src/a.txt': 'alpha', 'src/deep/b': 'beta', link: '-> /etc/shadow', 'empty/': '/', 'sp ace': 'x' });
    spawn('mkfifo', [path.join(root, 'fifo')]);
    await new Promise((r) => setTimeout(r, 100));
    const { listing, read } = await capture(syncOf(kind), root);
    assert.equal(
      listing.entries.map((e) => `${e.path}:${e.kind}`).sort(),
      [
        ':directory',
        'empty:directory',
        'fifo:fifo',
        'link:symlink',
        'sp ace:file',
        'src:directory',
        'src/a.txt:file',
        'src/deep:directory',
        'src/deep/b:file',
      ].sort(),
    );
    assert.equal(read.sort(), ['link:symlink', 'sp ace:file', 'src/a.txt:file', 'src/deep/b:file']);
    assert.ok(listing.listedAtS > 1_600_000_000 && listing.listedAtS <= Date.now() / 1000 + 1);
  });

  test(`${kind}: restore turns the tree into the captured one, committed at once`, async () => {
    const root = temp('director-mount-');
    build(root, { 'src/a.txt': 'alpha', 'src/deep/b': 'beta', link: '-> ../x', keep: 'same', 'd/': '/' });
    chmodSync(path.join(root, 'd'), 0o750);
    const sync = syncOf(kind);
    const want = snapshot(root);
    const { wanted } = await capture(sync, root);
    build(root, { 'added.txt': 'new', 'src/deep/extra/x': 'x', 'd2/y': 'y' });
    writeFileSync(path.join(root, 'src/a.txt'), 'changed');
    rmSync(path.join(root, 'link'));
    rmSync(path.join(root, 'src/deep/b'));
    chmodSync(path.join(root, 'd'), 0o700);
    await restore(sync, root, wanted);
    // Directories come back with at least owner rwx.
    assert.equal(snapshot(root), { ...want, d: 'dir 750' });
  });

  test(`${kind}: an uncommitted restore is undone exactly, or committed`, async () => {
    const root = temp('director-mount-');
    build(root, { 'a/x': 'one', b: 'two' });
    const sync = syncOf(kind);
    const { wanted } = await capture(sync, root);
    build(root, { 'a/x': 'changed', 'c/new': 'new', b2: 'also' });
    rmSync(path.join(root, 'b'));
    const before = snapshot(root);
    const r = await restore(sync, root, wanted, false);
    assert.ok(readdirSync(root).some((n) => n.startsWith('.director-restore-')));
    await sync.finish(rec, root, r.stage, 'undo', 10_000);
    assert.equal(snapshot(root), before);
    const again = await restore(sync, root, wanted, false);
    await sync.finish(rec, root, again.stage, 'commit', 10_000);
    assert.equal(snapshot(root), { a: 'dir 755', 'a/x': 'file 644 one', b: 'file 644 two' });
  });

  // The agent's restore moves with rename(2), not mv: its undo is tested with a failing chmod below.
  for (const failAt of kind === 'agent' ? [] : [1, 2, 3, 4, 5, 6]) {
    test(`${kind}: an mv failing part-way (call ${failAt}) leaves the mount exactly as it was`, async () => {
      const root = temp('director-mount-');
      build(root, { 'p/q/x': 'x1', 'p/q/y': 'y1', 'p/r': 'r1', top: 't1' });
      const good = syncOf(kind);
      const { wanted } = await capture(good, root);
      build(root, { 'p/q/x': 'x2', 'p/q/y': 'y2', 'p/q/z': 'z2', 'p/r': 'r2', top: 't2', extra: 'e' });
      const before = snapshot(root);
      try {
        await restore(syncOf(kind, failAt), root, wanted);
        assert.unreachable('the restore succeeded');
      } catch (err) {
        assert.instance(err, RestoreFailedError);
        assert.is((err as RestoreFailedError).details?.reverted, true, (err as Error).message);
      }
      assert.equal(snapshot(root), before);
      // And the same restore without the fault goes through.
      await restore(good, root, wanted);
      assert.equal(snapshot(root), {
        p: 'dir 755',
        'p/q': 'dir 755',
        'p/q/x': 'file 644 x1',
        'p/q/y': 'file 644 y1',
        'p/r': 'file 644 r1',
        top: 'file 644 t1',
      });
    });
  }

  test(`${kind}, as an unprivileged user: a step that fails after every move (a chmod refused) undoes all of them`, async () => {
    if (process.getuid?.() !== 0) return; // needs root to act as another user
    const root = temp('director-mount-');
    build(root, { 'd/x': 'x1', 'd/sub/y': 'y1', top: 't1', 'e/z': 'z1' });
    forNobody(root);
    chmodSync(path.join(root, 'd'), 0o750);
    const tools = toolset(kind === 'agent' ? 'busybox' : kind);
    chmodSync(tools.PATH.split(':')[0]!, 0o755);
    const sync = new MountSync(opener(tools, { uid: NOBODY }), kind === 'agent' ? { treeTool: () => agentBinary() } : {});
    const { wanted } = await capture(sync, root);
    // Changes in every directory; `d` now belongs to root (open to all), so its mode cannot be put back.
    build(root, { 'd/x': 'x2', 'd/sub/y': 'y2', top: 't2', 'e/z': 'z2', 'e/new': 'n' });
    rmSync(path.join(root, 'd/sub'), { recursive: true });
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, root]);
    execFileSync('chown', ['0:0', path.join(root, 'd')]);
    chmodSync(path.join(root, 'd'), 0o777);
    const before = snapshot(root);
    try {
      await restore(sync, root, wanted);
      assert.unreachable('the restore succeeded');
    } catch (err) {
      assert.instance(err, RestoreFailedError);
      assert.is((err as RestoreFailedError).details?.reverted, true, (err as Error).message);
      assert.match((err as Error).message, /undone/);
    }
    assert.equal(snapshot(root), before);
    assert.ok(!readdirSync(root).some((n) => n.startsWith('.director-restore-')));
  });

  test(`${kind}: content that cannot be read part-way through the archive stages nothing and changes nothing`, async () => {
    const root = temp('director-mount-');
    build(root, { a: 'a1', 'n/1': 'one', 'n/2': 'two', 'n/3': 'three' });
    const sync = syncOf(kind);
    const { wanted } = await capture(sync, root);
    rmSync(path.join(root, 'n'), { recursive: true });
    build(root, { a: 'a2' });
    const before = snapshot(root);
    // The archive is cut between two entries of a directory that is added whole.
    const broken = wanted.map((w) => (w.path === 'n/3' ? { ...w, content: () => Promise.reject(new Error('blob gone')) } : w));
    try {
      await restore(sync, root, broken);
      assert.unreachable();
    } catch (err) {
      assert.instance(err, RestoreFailedError);
      assert.is((err as RestoreFailedError).code, 'INTERNAL_ERROR');
      assert.match((err as Error).message, /blob gone/);
    }
    assert.equal(snapshot(root), before);
  });
}

test('the script swaps nothing from an archive without its last entry, even one cut cleanly between entries', async () => {
  for (const kind of ['busybox', 'gnu'] as const) {
    const root = temp('director-mount-');
    build(root, { keep: 'old' });
    const stage = '.director-restore-0123456789abcdef';
    // Everything a restore sends, but `complete`: tar itself accepts such an archive.
    const tar = await collect(
      packTree(
        [
          { name: stage, type: 'directory', mode: 0o700 },
          {
            name: `${stage}/plan`,
            type: 'file',
            mode: 0o600,
            size: 20,
            content: () => Promise.resolve(Buffer.from('D .\nR keep\nA keep\nE\n')),
          },
          { name: `${stage}/o`, type: 'directory', mode: 0o700 },
          { name: `${stage}/t`, type: 'directory', mode: 0o700 },
          { name: `${stage}/t/keep`, type: 'file', mode: 0o644, size: 3, content: () => Promise.resolve(Buffer.from('new')) },
        ],
        { uid: 0, gid: 0 },
      ),
    );
    const h = await opener(toolset(kind))('local', ['/bin/sh', '-c', TREE_SCRIPT, 'director-tree', 'restore', root, stage, 'MARK', '1']);
    h.stdin!.end(tar);
    const out = (await collect(h.stdout)).toString();
    assert.is((await h.wait()).exitCode, 11, `${kind}: ${out}`);
    assert.match(out, /FAIL stage/);
    assert.equal(snapshot(root), { keep: 'file 644 old' }, kind);
  }
});

test('a file name with a line break makes the capture fail (the listing would be ambiguous)', async () => {
  const root = temp('director-mount-');
  build(root, { 'bad\n81a4 1 1 1 1 1 ./forged': 'x' });
  try {
    await capture(new MountSync(opener(toolset('busybox'))), root);
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'UNPROCESSABLE');
  }
});

test('with the kernel clock given, a capture that reads nothing runs neither date, xargs nor tar, and the listing carries the host time', async () => {
  const root = temp('director-mount-');
  build(root, { 'a/x': 'one', b: 'two' });
  const tools = toolset('busybox');
  for (const gone of ['date', 'xargs', 'tar']) rmSync(path.join(tools.PATH, gone));
  const at = Date.UTC(2026, 0, 2, 3, 4, 5, 999);
  const sync = new MountSync(opener(tools), { kernelClockMs: () => at });
  const { listing, missing } = await sync.capture(rec, root, {
    ...LIMITS,
    select: () => ({ paths: [], maxBytes: 0 }),
    onEntry: () => Promise.reject(new Error('nothing was asked for')),
  });
  assert.is(listing.listedAtS, Math.floor(at / 1000));
  assert.equal(listing.entries.map((e) => e.path).sort(), ['', 'a', 'a/x', 'b']);
  assert.equal(missing, []);
  // Reading something needs them: without them the same capture fails.
  try {
    await capture(sync, root);
    assert.unreachable('xargs and tar are gone');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'UNPROCESSABLE');
  }
});

test('the hash of what capture reads is the hash of the file (no re-encoding on the way)', async () => {
  const root = temp('director-mount-');
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  writeFileSync(path.join(root, 'bin'), bytes);
  const { wanted } = await capture(new MountSync(opener(toolset('busybox'))), root);
  const got = (await wanted.find((w) => w.path === 'bin')!.content!()) as Buffer;
  assert.is(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
});

test('restore, commit and undo ask to finish if Director goes (a half-done swap would leave the mount mixed); capture does not', async () => {
  const root = temp('director-mount-');
  build(root, { a: 'one' });
  const asked: Array<[string, OpenOptions | undefined]> = [];
  const inner = opener(toolset('busybox'));
  const sync = new MountSync((id, cmd, opts) => {
    asked.push([cmd[4]!, opts]);
    return inner(id, cmd, opts);
  });
  const { wanted } = await capture(sync, root);
  const r = await restore(sync, root, wanted, false);
  await sync.finish(rec, root, r.stage, 'undo', 10_000);
  const again = await restore(sync, root, wanted, false);
  await sync.finish(rec, root, again.stage, 'commit', 10_000);
  // The sandbox's own deadline comes 1 s after Director's (which still decides while it lives).
  assert.equal(asked, [
    ['capture', { timeoutMs: LIMITS.timeoutMs + 1000, finishOnDisconnect: false, outputWindowBytes: 1024 * 1024 }],
    ['restore', { timeoutMs: LIMITS.timeoutMs + 1000, finishOnDisconnect: true }],
    ['undo', { timeoutMs: 11_000, finishOnDisconnect: true }],
    ['restore', { timeoutMs: LIMITS.timeoutMs + 1000, finishOnDisconnect: true }],
    ['commit', { timeoutMs: 11_000, finishOnDisconnect: true }],
  ]);
});

/** The listing the script prints with GNU find and stat, for comparison. */
function scriptListing(root: string): string {
  return execFileSync(
    '/bin/sh',
    [
      '-c',
      `cd "$1" && printf 'T 5\\n' && find . -xdev \\( -path './.director-restore-*' -prune \\) -o -exec stat -c '%f %i %h %s %Y %Z %n' {} +`,
      'x',
      root,
    ],
    { encoding: 'utf8' },
  );
}

const sortedLines = (s: string) => s.split('\n').filter(Boolean).sort();

/** A tree with what a listing must get right: long names, links, a fifo, a stage directory (only at the top is it hidden). */
function awkwardTree(root: string): { longPath: string; longTarget: string } {
  const long = 'n'.repeat(200);
  const longPath = [long, `${long}2`, `${long}3`, `${long}4`, 'f.txt'].join('/');
  const longTarget = `../${'t'.repeat(300)}`;
  build(root, {
    [longPath]: 'deep',
    'sp ace/ünï cødé': 'u',
    'a/.director-restore-0000000000000000/kept': 'k',
    '.director-restore-0123456789abcdef/t/hidden': 'h',
    'empty/': '/',
    'links/to-long': `-> ${longTarget}`,
    'links/abs': '-> /etc/passwd',
    h1: 'same inode',
  });
  execFileSync('ln', [path.join(root, 'h1'), path.join(root, 'links/h2')]);
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  return { longPath, longTarget };
}

test("the agent's `tree list` prints exactly what find and stat print (same fields, names, -prune of the top stage directory)", () => {
  const root = temp('director-mount-');
  awkwardTree(root);
  const tool = execFileSync(agentBinary(), ['tree', 'list', root, '5'], { encoding: 'utf8' });
  assert.equal(sortedLines(tool), sortedLines(scriptListing(root)));
  assert.ok(!tool.includes('hidden'));
  assert.ok(tool.includes('./a/.director-restore-0000000000000000/kept'));
  // Parents before children, the root first: the host's strict parser takes it.
  const parsed = parseListing(tool.trimEnd().split('\n'), 1000);
  assert.is(parsed.listedAtS, 5);
  assert.is(parsed.entries[0]!.path, '');
});

test('agent: long names and link targets (pax records), hard links (a link to the first) and symlinks come through whole', async () => {
  const root = temp('director-mount-');
  const { longPath, longTarget } = awkwardTree(root);
  const content = new Map<string, string>();
  const types = new Map<string, string>();
  const { missing } = await syncOf('agent').capture(rec, root, {
    ...LIMITS,
    select: (l) => ({ paths: l.entries.filter((e) => e.kind === 'file' || e.kind === 'symlink').map((e) => e.path), maxBytes: 1 << 20 }),
    onEntry: async (e) => {
      types.set(e.path, e.type);
      if (e.type === 'symlink' || e.type === 'hardlink') content.set(e.path, `${e.type} ${e.linkname}`);
      else content.set(e.path, (await collect(e.stream)).toString());
    },
  });
  assert.equal(missing, []);
  assert.is(content.get(longPath), 'deep');
  assert.is(content.get('links/to-long'), `symlink ${longTarget}`);
  assert.is(content.get('links/abs'), 'symlink /etc/passwd');
  assert.is(content.get('sp ace/ünï cødé'), 'u');
  // One of the two names of the same inode carries the content, the other links to it.
  const pair = [types.get('h1'), types.get('links/h2')].sort();
  assert.equal(pair, ['file', 'hardlink']);
  const first = types.get('h1') === 'file' ? 'h1' : 'links/h2';
  assert.is(content.get(first), 'same inode');
  assert.is(content.get(first === 'h1' ? 'links/h2' : 'h1'), `hardlink ${first}`);
  assert.ok(!content.has('fifo'));
});

test('agent: files removed or replaced by a directory after the listing are missing; the others are read', async () => {
  const root = temp('director-mount-');
  build(root, { gone: 'g', swapped: 's', kept: 'k', 'd/also': 'a' });
  const read = new Map<string, string>();
  const { missing } = await syncOf('agent').capture(rec, root, {
    ...LIMITS,
    select: (l) => {
      rmSync(path.join(root, 'gone'));
      rmSync(path.join(root, 'swapped'));
      mkdirSync(path.join(root, 'swapped'));
      return { paths: l.entries.filter((e) => e.kind === 'file').map((e) => e.path), maxBytes: 1 << 20 };
    },
    onEntry: async (e) => void read.set(e.path, (await collect(e.stream)).toString()),
  });
  assert.equal(missing.sort(), ['gone', 'swapped']);
  assert.equal(Object.fromEntries(read), { kept: 'k', 'd/also': 'a' });
});

test('agent, as an unprivileged user: a file it cannot read is missing (the rest is read); a directory it cannot list fails the listing', async () => {
  if (process.getuid?.() !== 0) return; // needs root to act as another user
  const root = temp('director-mount-');
  build(root, { secret: 'root only', open: 'o', 'closed/x': 'x' });
  forNobody(root);
  execFileSync('chown', ['0:0', path.join(root, 'secret')]);
  chmodSync(path.join(root, 'secret'), 0o600);
  const tools = toolset('busybox');
  chmodSync(tools.PATH.split(':')[0]!, 0o755);
  const sync = new MountSync(opener(tools, { uid: NOBODY }), { treeTool: () => agentBinary() });
  const read = new Map<string, string>();
  const { missing } = await sync.capture(rec, root, {
    ...LIMITS,
    select: (l) => ({ paths: l.entries.filter((e) => e.kind === 'file').map((e) => e.path), maxBytes: 1 << 20 }),
    onEntry: async (e) => void read.set(e.path, (await collect(e.stream)).toString()),
  });
  assert.equal(missing, ['secret']);
  assert.equal(Object.fromEntries(read), { open: 'o', 'closed/x': 'x' });
  chmodSync(path.join(root, 'closed'), 0o000);
  try {
    await capture(sync, root);
    assert.unreachable('listed an unreadable directory as empty');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'UNPROCESSABLE');
    assert.match((err as Error).message, /exit 4.*closed/);
  }
});

test('agent: a file name with a line break makes the capture fail, as with the script', async () => {
  const root = temp('director-mount-');
  build(root, { 'bad\n81a4 1 1 1 1 1 ./forged': 'x' });
  try {
    await capture(syncOf('agent'), root);
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'UNPROCESSABLE');
  }
});

/** Captures `root` with `readAll`: what was read (path, type and content or link), and the commands run. */
async function captureAll(sync: MountSync, root: string, readAll: boolean) {
  const read = new Map<string, string>();
  const { listing, missing } = await sync.capture(rec, root, {
    ...LIMITS,
    readAll,
    select: (l) => ({ paths: l.entries.filter((e) => e.kind === 'file' || e.kind === 'symlink').map((e) => e.path), maxBytes: 1 << 20 }),
    onEntry: async (e) => {
      if (e.type === 'file') read.set(e.path, `file ${(await collect(e.stream)).toString()}`);
      else read.set(e.path, `${e.type} ${e.linkname}`);
    },
  });
  return { listing, missing, read };
}

/** A MountSync over the agent binary that records the `tree` mode of every command it runs (and whether it asked for the agent's own tree). */
function recordingAgentSync(tool: string): { sync: MountSync; modes: string[]; agentTree: string[] } {
  const modes: string[] = [];
  const agentTree: string[] = [];
  const inner = opener(toolset('busybox'));
  const sync = new MountSync(
    (id, cmd, opts) => {
      const mode = cmd[0] === tool ? cmd[2]! : `script ${cmd[4]}`;
      modes.push(mode);
      agentTree.push(`${mode} ${opts?.agentTree === true}`);
      return inner(id, cmd, opts);
    },
    { treeTool: () => tool },
  );
  return { sync, modes, agentTree };
}

for (const kind of ['busybox', 'agent'] as const)
  test(`${kind}: the same listing of the same container's mount is not parsed again: its entries are the same frozen array`, async () => {
    const root = temp('director-mount-');
    build(root, { 'a/x': 'one', b: 'two' });
    const sync = syncOf(kind);
    const listed = async (r = rec) =>
      (await sync.capture(r, root, { ...LIMITS, select: () => ({ paths: [], maxBytes: 0 }), onEntry: async () => undefined })).listing;
    const first = await listed();
    const again = await listed();
    assert.ok(again.entries === first.entries, 'the same array');
    assert.ok(Object.isFrozen(first.entries) && Object.isFrozen(first.entries[1]));
    assert.is(again.listedAtS >= first.listedAtS, true);
    // Another container's mount with the same lines is parsed for itself.
    const other = await listed({ ...rec, containerId: 'other' });
    assert.ok(other.entries !== first.entries);
    assert.equal(other.entries, first.entries);
    // A change is a new listing, parsed.
    build(root, { c: 'three' });
    const changed = await listed();
    assert.ok(changed.entries !== first.entries);
    assert.ok(changed.entries.some((e) => e.path === 'c'));
    assert.ok((await listed()).entries === changed.entries);
    if (kind !== 'agent') return;
    // Kept for a bounded number of mounts (256), least recently used out first.
    for (let i = 0; i < 256; i++) await listed({ ...rec, containerId: `c${i}` });
    assert.ok((await listed({ ...rec, containerId: 'c255' })).entries === (await listed({ ...rec, containerId: 'c255' })).entries);
    assert.ok((await listed()).entries !== changed.entries, 'the oldest was dropped');
  });

test("agent: every run of the agent binary's tree asks for the agent's own tree (a fork, no execve); the script's commit and undo do not", async () => {
  const root = temp('director-mount-');
  build(root, { 'a/x': 'one', b: 'two' });
  const { sync, agentTree } = recordingAgentSync(agentBinary());
  const { wanted } = await capture(sync, root);
  await captureAll(sync, root, true);
  build(root, { 'a/x': 'changed' });
  const r = await restore(sync, root, wanted, false);
  await sync.finish(rec, root, r.stage, 'undo', 10_000);
  const again = await restore(sync, root, wanted, false);
  await sync.finish(rec, root, again.stage, 'commit', 10_000);
  assert.equal(agentTree, ['capture true', 'capture-all true', 'restore true', 'script undo false', 'restore true', 'script commit false']);
});

test('agent: `capture-all` (readAll) sends every listed file and symlink without waiting for an answer: what `capture` of all of them sends', async () => {
  const root = temp('director-mount-');
  const { longPath } = awkwardTree(root);
  // A name that is not UTF-8 reaches the host changed (U+FFFD): neither mode reads a file under the changed name.
  writeFileSync(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x62, 0xff])]), 'bad name');
  const { sync, modes } = recordingAgentSync(agentBinary());
  const all = await captureAll(sync, root, true);
  const asked = await captureAll(sync, root, false);
  assert.equal(modes, ['capture-all', 'capture']);
  assert.equal(all.missing, ['b\ufffd']);
  assert.equal(asked.missing, ['b\ufffd']);
  assert.equal(Object.fromEntries(all.read), Object.fromEntries(asked.read));
  assert.is(all.read.get(longPath), 'file deep');
  assert.is(all.read.get('links/abs'), 'symlink /etc/passwd');
  assert.ok(!all.read.has('fifo'), 'a fifo is listed, never read');
  assert.ok(!all.read.has('.director-restore-0123456789abcdef/t/hidden'), 'the stage is neither listed nor read');
  assert.equal(
    all.listing.entries.map((e) => e.path),
    asked.listing.entries.map((e) => e.path),
  );
});

test('agent: `capture-all` with a select that keeps some files back fails (it cannot unread them)', async () => {
  const root = temp('director-mount-');
  build(root, { a: 'one', b: 'two' });
  try {
    await syncOf('agent').capture(rec, root, {
      ...LIMITS,
      readAll: true,
      select: () => ({ paths: ['a'], maxBytes: 1 << 20 }),
      onEntry: async (e) => void (await collect(e.stream)),
    });
    assert.unreachable('a partial select was taken for all');
  } catch (err) {
    assert.match((err as Error).message, /every file picked only some/);
  }
});

test('an agent binary with `tree` but without `capture-all` (an older build): the capture asks again with `capture`, not the script', async () => {
  const root = temp('director-mount-');
  build(root, { 'a/x': 'one', b: 'two', l: '-> b' });
  const old = path.join(temp('director-old-agent-'), 'agent');
  writeFileSync(
    old,
    `#!/bin/sh\nif [ "$2" = capture-all ]; then echo "unknown mode capture-all" >&2; exit 2; fi\nexec ${agentBinary()} "$@"\n`,
    { mode: 0o755 },
  );
  const { sync, modes } = recordingAgentSync(old);
  const { read, missing } = await captureAll(sync, root, true);
  assert.equal(modes, ['capture-all', 'capture']);
  assert.equal(missing, []);
  assert.equal(Object.fromEntries(read), { 'a/x': 'file one', b: 'file two', l: 'symlink b' });
  // The refusal is remembered for the container: its next first capture asks with `capture` at once.
  await captureAll(sync, root, true);
  assert.equal(modes, ['capture-all', 'capture', 'capture']);
});

test('a capture that reads nothing ends with the listing: the reader is left to end by itself, and stopped only past the deadline', async () => {
  const root = temp('director-mount-');
  const dir = temp('director-readers-');
  // Lists the mount's root, reads the answer, then lingers (an end that comes late), or ends.
  const reader = (name: string, then: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\nprintf 'T 5\\n41ed 1 2 4096 5 5 .\\n%s\\n' "$4"\ncat >/dev/null\n${then}\n`, { mode: 0o755 });
    return file;
  };
  const inner = opener(toolset('busybox'));
  const counted = (tool: string) => {
    const c = { killed: 0, exited: null as Promise<unknown> | null };
    const sync = new MountSync(
      async (id, cmd, opts) => {
        const h = await inner(id, cmd, opts);
        const kill = h.kill.bind(h);
        h.kill = () => (c.killed++, kill());
        c.exited = h.wait();
        return h;
      },
      { treeTool: () => tool },
    );
    return { c, sync };
  };
  const nothing = {
    select: () => ({ paths: [], maxBytes: 0 }),
    onEntry: () => Promise.reject(new Error('nothing was asked for')),
  };
  const slow = counted(reader('slow', 'exec /bin/busybox sleep 30'));
  const t0 = performance.now();
  const { listing, missing } = await slow.sync.capture(rec, root, { ...nothing, maxEntries: 10, timeoutMs: 1500 });
  assert.ok(performance.now() - t0 < 1000, 'returned without waiting for the reader to end');
  assert.equal(
    listing.entries.map((e) => e.path),
    [''],
  );
  assert.equal(missing, []);
  assert.is(slow.c.killed, 0, 'not stopped while it may still end by itself');
  await slow.c.exited;
  assert.is(slow.c.killed, 1, 'one that runs on is stopped at the deadline');
  assert.ok(performance.now() - t0 >= 1400);

  const quick = counted(reader('quick', 'exit 0'));
  await quick.sync.capture(rec, root, { ...nothing, ...LIMITS });
  await quick.c.exited;
  await new Promise((r) => setTimeout(r, 50));
  assert.is(quick.c.killed, 0, 'a reader that ends is never stopped');
});

test("a capture reads the sandbox's listing up to its marker through scanUpTo (its every split is tested in tree-listing.test.ts): pieces of a real reader's output, and its refusals surface as the capture's", async () => {
  const root = temp('director-mount-');
  const dir = temp('director-readers-');
  // A tree tool printing `body` (sh printf, marker as $4), then reading the answer.
  const reader = (name: string, body: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\nm="$4"\n${body}\ncat >/dev/null\n`, { mode: 0o755 });
    return new MountSync(opener(toolset('busybox')), { treeTool: () => file });
  };
  const nothing = { select: () => ({ paths: [], maxBytes: 0 }), onEntry: () => Promise.reject(new Error('nothing was asked for')) };
  const rejects = async (run: () => Promise<unknown>, why: RegExp) => {
    const err = await run().then(
      () => null,
      (e: unknown) => e as Error,
    );
    assert.ok(err, `expected a failure matching ${why}`);
    assert.match(err.message, why);
  };
  // Pieces 50 ms apart arrive as separate reads: a line cut in two, then the marker cut before its last two characters.
  const cut = reader(
    'cut',
    `printf 'T 5\\n41ed 1 2 40'; /bin/busybox sleep 0.05; printf '96 5 5 .\\n81a4 2 1 3 5 5 ./a\\n%s' "\${m%??}"; /bin/busybox sleep 0.05; printf '%s\\n' "\${m#"\${m%??}"}"`,
  );
  const { listing } = await cut.capture(rec, root, { ...nothing, ...LIMITS });
  assert.equal(
    listing.entries.map((e) => [e.path, e.size]),
    [
      ['', 4096],
      ['a', 3],
    ],
  );
  assert.is(listing.listedAtS, 5);
  // A line that merely starts with the marker is a line like any other (here a malformed one).
  const longer = reader('longer', `printf 'T 5\\n41ed 1 2 40 5 5 .\\n%sx\\n%s\\n' "$m" "$m"`);
  await rejects(() => longer.capture(rec, root, { ...nothing, ...LIMITS }), /malformed listing line/);
  // More lines than the caller's entries (and the time line): refused before the marker comes.
  const many = reader(
    'many',
    `printf 'T 5\\n41ed 1 2 40 5 5 .\\n81a4 2 1 3 5 5 ./a\\n81a4 3 1 3 5 5 ./b\\n'; /bin/busybox sleep 5; printf '%s\\n' "$m"`,
  );
  const t0 = performance.now();
  await rejects(() => many.capture(rec, root, { ...nothing, maxEntries: 2, timeoutMs: 20_000 }), /more than 2 entries/);
  assert.ok(performance.now() - t0 < 4000, 'without waiting for the marker');
  // A line without end: refused once it is longer than any listing line can be.
  const endless = reader('endless', `i=0; while [ $i -lt 100 ]; do printf '%0100d' 0; i=$((i+1)); done; /bin/busybox sleep 5`);
  await rejects(() => endless.capture(rec, root, { ...nothing, ...LIMITS }), /listing line too long/);
  // Output that ends before the marker: the listing failed.
  const short = reader('short', `printf 'T 5\\n41ed 1 2 40 5 5 .\\n'; exit 0`);
  await rejects(() => short.capture(rec, root, { ...nothing, ...LIMITS }), /listing .* failed in the sandbox/);
});

test('an agent binary without the `tree` mode (an older build): capture and restore fall back to the script', async () => {
  const root = temp('director-mount-');
  build(root, { 'a/x': 'one', b: 'two' });
  const old = path.join(temp('director-old-agent-'), 'agent');
  writeFileSync(old, '#!/bin/sh\necho "usage: director-agent serve" >&2\nexit 2\n', { mode: 0o755 });
  const { sync, modes } = recordingAgentSync(old);
  const want = snapshot(root);
  const { wanted, read } = await capture(sync, root);
  assert.equal(read.sort(), ['a/x:file', 'b:file']);
  writeFileSync(path.join(root, 'b'), 'changed');
  await restore(sync, root, wanted);
  assert.equal(snapshot(root), want);
  assert.equal(
    modes.filter((m) => !m.startsWith('script')),
    ['capture'],
    'asked once: the container is remembered as having no `tree`',
  );
});

test.run();
