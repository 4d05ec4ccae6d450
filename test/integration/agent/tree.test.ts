/**
 * The agent's checkpoint reader (`director-agent tree`, images/agent/tree*.c) against hostile
 * input, in a real sandbox: crafted archives on a restore (from an API user, through the host)
 * and symlinks planted by the sandbox's own code. Every refused case must fail with a clear
 * message on stderr and leave nothing outside the target: the mount holds what it held (no stage
 * left behind) and /tmp, outside it, is unchanged.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AgentClient } from '../../../runtime/sandbox/agent/client.ts';
import { agentLab, run, type AgentLab, type AgentSandbox } from '../../helpers/agent.ts';
import { BASE } from '../../helpers/runtime.ts';

const test = suite('agent tree');
let lab: AgentLab;
let sb: AgentSandbox;
let agent: AgentClient;

test.before(async () => {
  lab = agentLab();
  sb = await lab.sandbox({ image: BASE });
  agent = sb.agent!;
});
test.after(async () => {
  await lab.cleanup();
});

const STAGE = '.director-restore-0123456789abcdef';
const MARKER = '--director-test-marker--';

// --- a tar writer that writes what it is told, however wrong -------------------------------------

interface HeaderOpts {
  type?: string;
  size?: number;
  mode?: number;
  link?: string;
  /** Raw bytes for the 12-byte size field. */
  sizeField?: Buffer;
  /** Raw text for the 12-byte mtime field. */
  mtimeField?: string;
}

function header(name: string, o: HeaderOpts = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write(`${(o.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100);
  h.write('0001750\0', 108);
  h.write('0001750\0', 116);
  if (o.sizeField) o.sizeField.copy(h, 124);
  else h.write(`${(o.size ?? 0).toString(8).padStart(11, '0')}\0`, 124);
  h.write(o.mtimeField ?? '00000000000\0', 136);
  h.fill(' ', 148, 156);
  h.write(o.type ?? '0', 156);
  if (o.link) h.write(o.link.slice(0, 100), 157);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
const file = (name: string, data: string | Buffer = '', o: HeaderOpts = {}) => {
  const d = Buffer.from(data);
  return Buffer.concat([header(name, { ...o, size: d.length }), pad(d)]);
};
const dir = (name: string) => header(name, { type: '5', mode: 0o755 });
const symlink = (name: string, target: string) => header(name, { type: '2', link: target, mode: 0o777 });
const special = (name: string, type: string, link = '') => header(name, { type, ...(link ? { link } : {}) });
/** A pax header holding `records` as given (their lengths may lie). */
const pax = (...records: Array<string | Buffer>) => {
  const body = Buffer.concat(records.map((r) => Buffer.from(r)));
  return Buffer.concat([header('PaxHeader/x', { type: 'x', size: body.length }), pad(body)]);
};
/** A correct pax record. */
const record = (key: string, value: string) => {
  const body = ` ${key}=${value}\n`;
  let n = Buffer.byteLength(body) + 1;
  while (String(n).length + Buffer.byteLength(body) !== n) n = String(n).length + Buffer.byteLength(body);
  return `${n}${body}`;
};
const END = Buffer.alloc(1024);
const tar = (...parts: Buffer[]) => Buffer.concat(parts);

/** A well-formed restore adding `/workspace/new` (what the host's packTree sends, in small). */
const good = () =>
  tar(dir(STAGE), file(`${STAGE}/plan`, 'D .\nA new\nE\n'), dir(`${STAGE}/t`), file(`${STAGE}/t/new`, 'hello'), file(`${STAGE}/complete`));

// --- running the tool in the sandbox ---------------------------------------------------------------

interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Set while the cases registered with {@link both} run again with the component walk
 * (`DIRECTOR_TREE_WALK`: what the tool does where openat2 is refused, an older kernel or a
 * seccomp profile without it).
 */
let toolEnv: Record<string, string> | undefined;

/** What a symlink on the way to a path gives: openat2 refuses it with ELOOP, the walk (O_NOFOLLOW | O_DIRECTORY) with ENOTDIR. */
const linkOnTheWay = () => (toolEnv ? 'Not a directory' : 'Too many levels of symbolic links');

/**
 * Set while the cases registered with {@link both} run again exec'd: `/.director/agent tree` as
 * a process of its own, as it runs where the agent's fork is not used (`docker exec`, an agent
 * built before flag 8). Otherwise the agent runs its own tree in a fork (flag 8), as Director does.
 */
let execd = false;

const treeExec = (args: string[]) =>
  agent.exec({
    argv: ['/.director/agent', 'tree', ...args],
    stdin: true,
    timeoutMs: 20_000,
    ...(execd ? {} : { tree: true }),
    ...(toolEnv ? { env: toolEnv } : {}),
  });

async function tool(args: string[], stdin: Buffer): Promise<ToolRun> {
  const e = treeExec(args);
  let stdout = '';
  let stderr = '';
  e.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
  e.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  e.stdin!.on('error', () => undefined);
  e.stdin!.end(stdin);
  const exit = await e.exit;
  return { code: exit.exitCode, stdout, stderr };
}

const restore = (archive: Buffer) => tool(['restore', '/workspace', STAGE, MARKER, '1'], archive);

const sh = async (script: string) => {
  const r = await run(agent, { argv: ['sh', '-c', script] });
  assert.is(r.exit.exitCode, 0, `${script}: ${r.stderr}`);
  return r.stdout;
};

/** Everything under a directory with its kind, mode and size: what "unchanged" is checked against. */
const snapshot = (path: string) => sh(`cd ${path} && find . -exec stat -c '%A %s %n' {} + | sort`);

/** Starts each case from the same mount and /tmp (the sandbox's own planted links included). */
async function fresh(extra = ''): Promise<{ workspace: string; outside: string }> {
  await sh(
    'rm -rf /workspace/* /workspace/.director-* /tmp/* && mkdir /workspace/keep && echo kept > /workspace/keep/f && ' +
      'mkdir -m 700 /tmp/victim && echo secret > /tmp/secret' +
      (extra ? ` && ${extra}` : ''),
  );
  return { workspace: await snapshot('/workspace'), outside: await snapshot('/tmp') };
}

async function refused(archive: Buffer, message: RegExp, opts: { extra?: string; code?: number; answer?: RegExp } = {}): Promise<void> {
  const before = await fresh(opts.extra);
  const r = await restore(archive);
  assert.is(r.code, opts.code ?? 11, `exit ${r.code}: ${r.stderr}`);
  assert.match(r.stdout.trim().split('\n').pop() ?? '', opts.answer ?? /^FAIL stage$/);
  assert.match(r.stderr, message);
  assert.is(await snapshot('/workspace'), before.workspace, 'the mount is as it was, no stage left');
  assert.is(await snapshot('/tmp'), before.outside, 'nothing changed outside the mount');
}

/** Cases that resolve paths: run once as Director runs the tool (the agent's fork, openat2), and again (at the end) with the component walk, and exec'd. */
const walkCases: Array<[string, () => Promise<void>]> = [];
function both(name: string, body: () => Promise<void>): void {
  test(name, body);
  walkCases.push([name, body]);
}

both('a well-formed archive is restored (the baseline the refusals differ from)', async () => {
  await fresh();
  const r = await restore(tar(good(), END));
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${MARKER}\nOK\n$`));
  assert.is(await sh('cat /workspace/new; echo; ls -A /workspace'), 'hello\nkeep\nnew\n');
});

test('a long name through a well-formed pax record is restored', async () => {
  await fresh();
  const long = 'n'.repeat(180);
  const r = await restore(
    tar(
      dir(STAGE),
      file(`${STAGE}/plan`, `D .\nA ${long}\nE\n`),
      dir(`${STAGE}/t`),
      pax(record('path', `${STAGE}/t/${long}`)),
      file('ignored-ustar-name', 'long'),
      file(`${STAGE}/complete`),
      END,
    ),
  );
  assert.is(r.code, 0, r.stderr);
  assert.is(await sh(`cat /workspace/${long}`), 'long');
});

test('a time before 1970 (written "-N", as the host writes it) is restored at 0, not refused', async () => {
  await fresh();
  const r = await restore(
    tar(
      dir(STAGE),
      file(`${STAGE}/plan`, 'D .\nA old\nE\n'),
      dir(`${STAGE}/t`),
      file(`${STAGE}/t/old`, 'old', { mtimeField: '00000000-14 ' }),
      file(`${STAGE}/complete`),
      END,
    ),
  );
  assert.is(r.code, 0, r.stderr);
  assert.is(await sh('cat /workspace/old; echo; stat -c %Y /workspace/old'), 'old\n0\n');
});

test('entry names outside the stage are refused: `..`, absolute, beside the stage, through pax and GNU long names', async () => {
  await refused(tar(dir(STAGE), file(`${STAGE}/../evil`, 'x'), END), /refused: a `\.\.` path component/);
  await refused(tar(dir(STAGE), file('/tmp/evil', 'x'), END), /refused: an absolute path: \/tmp\/evil/);
  await refused(tar(dir(STAGE), file('evil', 'x'), END), /refused: an entry outside the stage: evil/);
  await refused(tar(dir(STAGE), file(`${STAGE}/./a`, 'x'), END), /refused: a `\.` path component/);
  await refused(tar(dir(STAGE), pax(record('path', `${STAGE}/../../tmp/evil`)), file('x', 'x'), END), /refused: a `\.\.` path component/);
  await refused(tar(dir(STAGE), pax(record('path', '/tmp/evil')), file('x', 'x'), END), /refused: an absolute path/);
  const gnu = Buffer.from(`${STAGE}/../evil\0`);
  await refused(
    tar(dir(STAGE), header('././@LongLink', { type: 'L', size: gnu.length }), pad(gnu), file('x', 'x'), END),
    /refused: a `\.\.`/,
  );
});

test('hard links, devices and FIFOs are refused', async () => {
  await refused(tar(dir(STAGE), special(`${STAGE}/h`, '1', '/etc/passwd'), END), /refused: a hard link/);
  await refused(tar(dir(STAGE), special(`${STAGE}/c`, '3'), END), /refused: a character device/);
  await refused(tar(dir(STAGE), special(`${STAGE}/b`, '4'), END), /refused: a block device/);
  await refused(tar(dir(STAGE), special(`${STAGE}/p`, '6'), END), /refused: a FIFO/);
});

both('a symlink the archive makes is never followed by a later entry', async () => {
  await refused(tar(dir(STAGE), symlink(`${STAGE}/l`, '/tmp'), file(`${STAGE}/l/evil`, 'x'), END), /refused: a symlink or a non-directory/);
  await refused(tar(dir(STAGE), symlink(`${STAGE}/l`, '/tmp'), dir(`${STAGE}/l/evildir`), END), /refused: a symlink or a non-directory/);
  await refused(tar(dir(STAGE), symlink(`${STAGE}/l`, '/tmp/victim'), dir(`${STAGE}/l`), END), /refused: a symlink or a non-directory/);
});

test('malformed pax records are refused: a length that overflows, runs past the header, or cannot hold its text; a NUL in a name', async () => {
  const f = file(`${STAGE}/a`, 'x');
  await refused(tar(dir(STAGE), pax('18446744073709551615 path=x\n'), f, END), /refused: a malformed pax record length/);
  await refused(tar(dir(STAGE), pax('4294967297 path=x\n'), f, END), /refused: a malformed pax record length/);
  await refused(tar(dir(STAGE), pax(`99 path=${STAGE}/zz\n`), f, END), /refused: a malformed pax record length/);
  await refused(tar(dir(STAGE), pax('1 path=abc\n'), f, END), /refused: a malformed pax record length/);
  await refused(tar(dir(STAGE), pax('12 pathabcde\n'), f, END), /refused: a malformed pax record/);
  await refused(tar(dir(STAGE), pax(record('path', `${STAGE}/a\0/../../../tmp/evil`)), f, END), /refused: a pax path .* NUL/);
});

test('oversized long-name records and header numbers that do not fit are refused before anything is read', async () => {
  await refused(tar(dir(STAGE), header('PaxHeader/x', { type: 'x', size: 1 << 20 }), END), /refused: a pax header larger than 64 KiB/);
  await refused(
    tar(dir(STAGE), header('././@LongLink', { type: 'L', size: 10_000 }), END),
    /refused: a GNU long name longer than 4096 bytes/,
  );
  await refused(tar(dir(STAGE), header(`${STAGE}/a`, { sizeField: Buffer.alloc(12, 0xff) }), END), /refused: a malformed archive header/);
  await refused(
    tar(dir(STAGE), header(`${STAGE}/a`, { sizeField: Buffer.from('77777777777x') }), END),
    /refused: a malformed archive header/,
  );
});

test('a truncated archive is an error: cut in a file, after one end block, without end blocks', async () => {
  const cutFile = tar(dir(STAGE), dir(`${STAGE}/t`), header(`${STAGE}/t/new`, { size: 5000 }), Buffer.alloc(100, 0x78));
  await refused(cutFile, /the archive ended early \(truncated\)/);
  await refused(tar(good(), Buffer.alloc(512)), /the archive ended early \(truncated\)/);
  await refused(good(), /the archive ended early \(truncated\)/);
});

test('a plan naming paths outside the mount is refused and undone', async () => {
  const staged = (plan: string) =>
    tar(dir(STAGE), file(`${STAGE}/plan`, plan), dir(`${STAGE}/t`), file(`${STAGE}/t/new`, 'hello'), file(`${STAGE}/complete`), END);
  const reverted = { code: 12 };
  await refused(staged('D ./../tmp\nA new\nE\n'), /refused: a plan directory outside the mount/, { ...reverted, answer: /^REVERTED R$/ });
  await refused(staged('D .\nA ../tmp/new\nE\n'), /refused: a plan name that is not one path component/, {
    ...reverted,
    answer: /^REVERTED A$/,
  });
  await refused(staged('E\nC 777 700 /tmp/victim\n'), /refused: a plan chmod outside the mount/, { ...reverted, answer: /^REVERTED C$/ });
  // Without its old mode, undoing the step would chmod the directory 000.
  await refused(staged('E\nC 777 ./sub\n'), /refused: a plan chmod without its two modes/, { ...reverted, answer: /^REVERTED C$/ });
});

both("a symlink the sandbox planted in the mount is never followed: not by a plan's chmod, not by a capture", async () => {
  // A kept directory replaced by a symlink to /tmp/victim: the chmod must not reach /tmp/victim.
  await refused(
    tar(dir(STAGE), file(`${STAGE}/plan`, 'E\nC 777 700 ./sub\n'), file(`${STAGE}/complete`), END),
    /chmod \.\/sub: (Too many levels of symbolic links|Not a directory)/,
    { extra: 'ln -s /tmp/victim /workspace/sub', code: 12, answer: /^REVERTED C$/ },
  );
  // A capture asked for ./sub/secret (a file when listed; /workspace/sub is now a link to /tmp): not read.
  await fresh('ln -s /tmp /workspace/sub');
  const r = await tool(['capture', '/workspace', MARKER, '0'], Buffer.from('1\n./sub/secret\0./keep/f\0'));
  assert.is(r.code, 123, r.stderr);
  assert.match(r.stderr, new RegExp(`\\./sub/secret: cannot stat: ${linkOnTheWay()}`));
  const archive = r.stdout.slice(r.stdout.indexOf(`${MARKER}\n`) + MARKER.length + 1);
  assert.ok(archive.includes('keep/f'), 'the other path was read');
  assert.not.ok(archive.includes('secret\n'), "the file behind the sandbox's link was not read");
  assert.not.ok(archive.includes('sub/secret'));
  // `capture-all` reads what the listing holds: the link as a link, nothing behind it.
  const all = await tool(['capture-all', '/workspace', MARKER, '0'], Buffer.alloc(0));
  assert.is(all.code, 0, all.stderr);
  assert.match(all.stdout, /^a1ff .* \.\/sub$/m);
  const allArchive = all.stdout.slice(all.stdout.indexOf(`${MARKER}\n`) + MARKER.length + 1);
  assert.ok(allArchive.includes('keep/f') && allArchive.includes('kept\n'), "the mount's file was read");
  assert.ok(allArchive.includes('sub\0'), 'the link is a record of the archive');
  assert.not.ok(allArchive.includes('secret'), "nothing behind the sandbox's link was read");
  // A capture path that is absolute or climbs out is refused outright.
  for (const bad of ['./../tmp/secret', './/tmp/secret', './a/../../tmp/secret']) {
    const c = await tool(['capture', '/workspace', MARKER, '0'], Buffer.from(`1\n${bad}\0`));
    assert.is(c.code, 1, `${bad}: ${c.stderr}`);
    assert.match(c.stderr, /refused: /, bad);
    assert.not.ok(c.stdout.includes('secret\n'), bad);
  }
});

both('the listing does not enter a symlinked directory', async () => {
  // Also one level down: the listing opens d/e by its path (openat2 where it is there).
  await fresh('ln -s /tmp /workspace/sub && mkdir -p /workspace/d/e && echo in-e > /workspace/d/e/f && ln -s /tmp /workspace/d/sub');
  const r = await tool(['list', '/workspace', '0'], Buffer.alloc(0));
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^a1ff .* \.\/sub$/m);
  assert.match(r.stdout, /^a1ff .* \.\/d\/sub$/m);
  assert.match(r.stdout, /^81a4 .* \.\/d\/e\/f$/m);
  assert.not.match(r.stdout, /secret|victim/);
});

/** The entries of a ustar archive (as the tool writes them: names under 100 bytes), name to content. */
function entries(archive: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  for (let at = 0; at + 512 <= archive.length;) {
    const h = archive.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, ''), 8);
    out.set(name, archive.subarray(at + 512, at + 512 + size).toString('latin1'));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

both(
  'a capture reads each asked path from its own directory, in any order: back to a directory left before, another directory of the same name length, names that share a prefix, the mount itself',
  async () => {
    // Each path's directory is opened by its own name (one openat2): every switch must reach the right one.
    await fresh(
      'mkdir -p /workspace/a/b/c /workspace/ab /workspace/c && ln -s /tmp /workspace/s && ' +
        'for f in a/x a/z a/b/y a/b/c/v ab/w c/x w; do printf "in $f" > /workspace/$f; done',
    );
    const asked = ['a/x', 'a/b/y', 'a/z', 'c/x', 's/secret', 'ab/w', 'w', 'a/b/c/v', 'a/b/y', 'a/x'];
    const r = await tool(['capture', '/workspace', MARKER, '0'], Buffer.from(`1\n${asked.map((p) => `./${p}\0`).join('')}`));
    assert.is(r.code, 123, r.stderr); // s/secret is behind the sandbox's link: missing, not read
    assert.match(r.stderr, new RegExp(`\\./s/secret: cannot stat: ${linkOnTheWay()}`));
    const read = entries(Buffer.from(r.stdout.slice(r.stdout.indexOf(`${MARKER}\n`) + MARKER.length + 1), 'latin1'));
    assert.equal([...read.keys()].sort(), ['a/b/c/v', 'a/b/y', 'a/x', 'a/z', 'ab/w', 'c/x', 'w']);
    for (const [name, content] of read) assert.is(content, `in ${name}`, name);
    // `capture-all` the same way: every file under its own name and content.
    const all = await tool(['capture-all', '/workspace', MARKER, '0'], Buffer.alloc(0));
    assert.is(all.code, 0, all.stderr);
    const allRead = entries(Buffer.from(all.stdout.slice(all.stdout.indexOf(`${MARKER}\n`) + MARKER.length + 1), 'latin1'));
    assert.equal([...allRead.keys()].filter((n) => n !== 'keep/f' && n !== 's').sort(), [
      'a/b/c/v',
      'a/b/y',
      'a/x',
      'a/z',
      'ab/w',
      'c/x',
      'w',
    ]);
    for (const [name, content] of allRead) if (name !== 'keep/f' && name !== 's') assert.is(content, `in ${name}`, name);
  },
);

both(
  'a capture resolves every path afresh: a directory the sandbox swaps for a symlink between two of its files is not followed, the later file is missing',
  async () => {
    await fresh('mkdir /workspace/sub && head -c 8388608 /dev/zero > /workspace/sub/big && echo in-sub > /workspace/sub/secret');
    const e = treeExec(['capture', '/workspace', MARKER, '0']);
    let stderr = '';
    e.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    e.stdin!.end(Buffer.from('1\n./sub/big\0./sub/secret\0'));
    // Nothing is consumed here yet: once part of sub/big has arrived, the reader waits on its output
    // in the middle of it (8 MiB, past every buffer and window on the way) while the sandbox moves
    // sub away and links /tmp in its place.
    for (const until = Date.now() + 10_000; e.stdout.readableLength < 128 * 1024;) {
      assert.ok(Date.now() < until, 'the reader sent nothing of sub/big');
      await new Promise((r) => setTimeout(r, 10));
    }
    await sh('mv /workspace/sub /workspace/sub2 && ln -s /tmp /workspace/sub');
    const out = Buffer.concat((await e.stdout.toArray()) as Buffer[]);
    const exit = await e.exit;
    assert.is(exit.exitCode, 123, stderr);
    assert.match(stderr, new RegExp(`\\./sub/secret: cannot stat: ${linkOnTheWay()}`));
    const read = entries(out.subarray(out.indexOf(`${MARKER}\n`) + MARKER.length + 1));
    // Neither /tmp/secret (behind the link) nor the moved directory's file under the old name.
    assert.equal([...read.keys()], ['sub/big']);
    assert.is(read.get('sub/big')!.length, 8388608);
  },
);

both(
  'a restore resolves every entry afresh: a staged directory the sandbox swaps for a symlink between two of its entries fails the restore, nothing is created through it',
  async () => {
    await fresh();
    const t = `${STAGE}/t`;
    const e = treeExec(['restore', '/workspace', STAGE, MARKER, '1']);
    let stdout = '';
    let stderr = '';
    e.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    e.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    e.stdin!.write(tar(dir(STAGE), file(`${STAGE}/plan`, 'D .\nA a\nE\n'), dir(t), dir(`${t}/a`), file(`${t}/a/x`, 'first')));
    // Once a/x is staged, the sandbox moves the staged a away and links /tmp in its place; then the archive goes on in a.
    for (const until = Date.now() + 10_000; ;) {
      if ((await sh(`test -f /workspace/${t}/a/x && echo yes || true`)) === 'yes\n') break;
      assert.ok(Date.now() < until, 'a/x was never staged');
    }
    await sh(`mv /workspace/${t}/a /workspace/moved && ln -s /tmp /workspace/${t}/a`);
    e.stdin!.end(tar(file(`${t}/a/y`, 'second'), file(`${STAGE}/complete`), END));
    const exit = await e.exit;
    assert.is(exit.exitCode, 11, stderr);
    assert.match(stdout.trim().split('\n').pop() ?? '', /^FAIL stage$/);
    assert.match(stderr, /a symlink or a non-directory on the way/);
    assert.is(await sh('ls -A /tmp /workspace/moved | tr "\\n" " "'), '/tmp: secret victim  /workspace/moved: x ');
    assert.is(await sh('ls -A /workspace | tr "\\n" " "'), 'keep moved ');
  },
);

both(
  'a restore creates each entry in its own directory when the archive goes back to one it left, to another of the same name length, or names share a prefix',
  async () => {
    await fresh();
    const t = `${STAGE}/t`;
    const r = await restore(
      tar(
        dir(STAGE),
        file(`${STAGE}/plan`, 'D .\nA a\nA ab\nA c\nA w\nE\n'),
        dir(t),
        dir(`${t}/a`),
        file(`${t}/a/x`, 'in a/x'),
        dir(`${t}/a/b`),
        dir(`${t}/c`),
        file(`${t}/a/b/y`, 'in a/b/y'),
        file(`${t}/a/z`, 'in a/z'),
        file(`${t}/c/z`, 'in c/z'),
        dir(`${t}/ab`),
        file(`${t}/ab/w`, 'in ab/w'),
        file(`${t}/w`, 'in w'),
        file(`${t}/a/b/v`, 'in a/b/v'),
        file(`${STAGE}/complete`),
        END,
      ),
    );
    assert.is(r.code, 0, r.stderr);
    assert.is(
      await sh(
        'cd /workspace && for f in a/x a/b/y a/z c/z ab/w w a/b/v; do printf "$f=%s;" "$(cat $f)"; done; ls -A a a/b ab c | tr "\\n" " "',
      ),
      'a/x=in a/x;a/b/y=in a/b/y;a/z=in a/z;c/z=in c/z;ab/w=in ab/w;w=in w;a/b/v=in a/b/v;a: b x z  a/b: v y  ab: w  c: z ',
    );
  },
);

test('usage errors exit 2 and a mount it cannot enter exits 3, in every mode, before anything is read or listed', async () => {
  for (const args of [
    ['copy', '/workspace'],
    ['capture', '/workspace'],
    ['capture-all', '/workspace'],
    ['restore', '/workspace', STAGE, MARKER],
    ['list', '/workspace', 'soon'],
  ]) {
    const r = await tool(args, Buffer.alloc(0));
    assert.is(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.is(r.stdout, '', args.join(' '));
  }
  for (const args of [
    ['capture', '/nowhere', MARKER],
    ['capture-all', '/nowhere', MARKER],
    ['restore', '/nowhere', STAGE, MARKER, '1'],
    ['list', '/nowhere'],
  ]) {
    const r = await tool(args, Buffer.alloc(0));
    assert.is(r.code, 3, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, /cannot enter \/nowhere/);
    assert.is(r.stdout, '', args.join(' '));
  }
});

test("the agent's own tree runs in a fork that holds none of the agent's descriptors and that no sandbox process can read", async () => {
  await fresh('head -c 8388608 /dev/zero > /workspace/big');
  const held = async (tree: boolean) => {
    // Another exec running meanwhile: its pipes are the agent's descriptors too.
    const other = agent.exec({ argv: ['cat'], stdin: true, timeoutMs: 20_000 });
    await other.started;
    const e = agent.exec({ argv: ['/.director/agent', 'tree', 'capture-all', '/workspace', MARKER, '0'], timeoutMs: 20_000, tree });
    const pid = await e.started;
    assert.ok(pid, 'started');
    // Held on its output in the middle of big (nothing is read here yet): it is alive while looked at.
    for (const until = Date.now() + 10_000; e.stdout.readableLength < 128 * 1024;) {
      assert.ok(Date.now() < until, 'the reader sent nothing');
      await new Promise((r) => setTimeout(r, 10));
    }
    const seen = await run(agent, {
      argv: [
        'sh',
        '-c',
        `cat /proc/${pid}/comm; cat /proc/${pid}/environ >/dev/null && echo environ-read; ls /proc/${pid}/fd >/dev/null && echo fds-read; true`,
      ],
    });
    // The host (root) sees its descriptors: the process whose NSpid ends in pid, in the container's pid namespace.
    const init = execFileSync('docker', ['inspect', '-f', '{{.State.Pid}}', sb.containerId], { encoding: 'utf8' }).trim();
    const ns = readlinkSync(`/proc/${init}/ns/pid`);
    const host = readdirSync('/proc').find((d) => {
      if (!/^\d+$/.test(d)) return false;
      try {
        const nspid = /^NSpid:\s+(.*)$/m
          .exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1]
          ?.trim()
          .split(/\s+/);
        return nspid?.at(-1) === String(pid) && readlinkSync(`/proc/${d}/ns/pid`) === ns;
      } catch {
        return false;
      }
    });
    assert.ok(host, `host pid of ${pid}`);
    const fds = readdirSync(`/proc/${host}/fd`)
      .filter((fd) => Number(fd) > 2)
      .map((fd) => readlinkSync(`/proc/${host}/fd/${fd}`));
    e.stdout.resume();
    assert.is((await e.exit).exitCode, 0);
    other.stdin!.end();
    assert.is((await other.exit).exitCode, 0);
    return { seen: seen.stdout, fds };
  };
  const forked = await held(true);
  assert.is(forked.seen, 'director-tree\n', 'its memory, environment and descriptors are closed to the sandbox user');
  // Above stdio only what the reader opened itself: the mount and the file it is reading (no
  // channel socket, no signalfd, no pipe of the other exec).
  assert.ok(forked.fds.length > 0, 'the reader holds the mount');
  assert.ok(
    forked.fds.every((l) => l === '/workspace' || l.startsWith('/workspace/')),
    `only the mount's: ${forked.fds.join(' ')}`,
  );
  // The same look at an exec'd tree reads it all (the checks above can fail).
  const execdRun = await held(false);
  assert.match(execdRun.seen, /environ-read\nfds-read\n$/);
});

test('the agent refuses its own tree (flag 8) with a tty or for argv that is not `tree`', async () => {
  const argv = ['/.director/agent', 'tree', 'list', '/workspace'];
  const socket = (agent as unknown as { socket: { write(b: Buffer): boolean } }).socket;
  const write = socket.write.bind(socket);
  for (const patch of [
    // The tty bit set on the frame the host's encoder would refuse to make.
    (f: Buffer) => void (f[9] = f[9]! | 1),
    // argv[1] `tres`.
    (f: Buffer) => void f.write('tres', f.indexOf('tree', 9 + 9)),
  ]) {
    socket.write = (b: Buffer) => {
      socket.write = write;
      const f = Buffer.from(b);
      patch(f);
      return write(f);
    };
    const r = await run(agent, { argv, tree: true });
    assert.match(r.exit.error ?? '', /EINVAL/, JSON.stringify(r.exit));
  }
  assert.is((await run(agent, { argv, tree: true })).exit.exitCode, 0);
});

test("exec'd, as where the agent's fork is not used: every case above marked `both` gives the same answers", async () => {
  execd = true;
  try {
    for (const [name, body] of walkCases) {
      try {
        await body();
      } catch (err) {
        throw new Error(`exec'd: ${name}: ${(err as Error).message}`);
      }
    }
  } finally {
    execd = false;
  }
});

test('where openat2 is refused, the component walk gives the same answers: every case above marked `both`', async () => {
  toolEnv = { DIRECTOR_TREE_WALK: '1' };
  try {
    for (const [name, body] of walkCases) {
      try {
        await body();
      } catch (err) {
        throw new Error(`with the walk: ${name}: ${(err as Error).message}`);
      }
    }
  } finally {
    toolEnv = undefined;
  }
});

test.run();
