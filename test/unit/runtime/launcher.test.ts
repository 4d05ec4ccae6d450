import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import type { Engine, ExecHandle, ExecOptions } from '../../../runtime/engine/engine.ts';
import { Launchers, launchLine, shQuote } from '../../../runtime/sandbox/launcher.ts';

/**
 * The launcher's own script (launcher.ts `LAUNCHER`): read one line from stdin and eval it.
 * The line is fed on stdin exactly as the runtime writes it, so these tests exercise the
 * same read/eval path a sandbox runs.
 */
const LAUNCHER_SCRIPT = 'IFS= read -r l || exit 125; eval "$l"';

function runLine(line: string, cwd = os.tmpdir()): string {
  return execFileSync('/bin/sh', ['-c', LAUNCHER_SCRIPT], {
    input: line,
    cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  }).toString('utf8');
}

const NASTY = [
  "'",
  '"',
  "it's",
  '$(id)',
  '`id`',
  '${HOME}',
  '$HOME',
  'a; echo pwned',
  'a && echo pwned',
  '| cat /etc/passwd',
  'two  spaces',
  ' lead',
  'trail ',
  '',
  '\\',
  '\\n',
  '\\\\',
  '*',
  '?',
  '[a]',
  '~',
  '#x',
  '!',
  '-n',
  '--',
  '>out',
  '<in',
  'ünïcødé ☃ 日本',
  'tab\there',
  "'\"'\"'",
  "end\\'",
  '%s%d',
];

test('shQuote wraps in single quotes and splices embedded quotes', () => {
  assert.is(shQuote('abc'), "'abc'");
  assert.is(shQuote(''), "''");
  assert.is(shQuote("it's"), `'it'\\''s'`);
});

test('every argument reaches the command byte for byte through the launcher shell (no injection)', () => {
  const line = launchLine(['printf', '%s\\n', ...NASTY], {}, undefined);
  assert.ok(line);
  assert.equal(runLine(line).split('\n').slice(0, -1), NASTY);
});

test('each nasty argument alone survives the launcher shell', () => {
  for (const arg of NASTY) {
    const line = launchLine(['printf', '[%s]', arg], {}, undefined);
    assert.ok(line);
    assert.is(runLine(line), `[${arg}]`, JSON.stringify(arg));
  }
});

test('shQuote round-trips through sh -c for every nasty string', () => {
  for (const s of NASTY) {
    const out = execFileSync('/bin/sh', ['-c', `printf '%s' ${shQuote(s)}`]).toString('utf8');
    assert.is(out, s, JSON.stringify(s));
  }
});

test('environment values are exported verbatim and never expanded', () => {
  const env = Object.fromEntries(NASTY.map((v, i) => [`V${i}`, v]));
  const script = NASTY.map((_, i) => `printf '%s\\n' "$V${i}"`).join('; ');
  const line = launchLine(['/bin/sh', '-c', script], env, undefined);
  assert.ok(line);
  assert.equal(runLine(line).split('\n').slice(0, -1), NASTY);
});

test('exports each environment key and changes to the workdir with `cd --`', () => {
  const line = launchLine(['true'], { A: '1', B_2: 'x' }, '/w');
  assert.is(line, "cd -- '/w' || exit 126; export A='1'; export B_2='x'; exec 'true'\n");
});

test('a workdir with spaces, quotes, `$(...)` or a leading dash is entered, not interpreted', () => {
  const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'launcher-')));
  try {
    for (const name of ['a b \'c\' "d" $(id) `x`', '-rf']) {
      const dir = path.join(root, name);
      mkdirSync(dir);
      const line = launchLine(['pwd'], {}, name.startsWith('-') ? name : dir);
      assert.ok(line);
      assert.is(runLine(line, root), `${dir}\n`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a missing workdir exits 126 without running the command', () => {
  const line = launchLine(['printf', 'ran'], {}, '/nonexistent/launcher-test');
  assert.ok(line);
  try {
    runLine(line);
    assert.unreachable('should have failed');
  } catch (err) {
    const e = err as { status: number; stdout: Buffer };
    assert.is(e.status, 126);
    assert.is(e.stdout.toString(), '');
  }
});

test('the line is exactly one line ending in a newline', () => {
  const line = launchLine(['echo', 'a b'], { X: 'y' }, '/tmp');
  assert.ok(line);
  assert.ok(line.endsWith('\n'));
  assert.is(line.indexOf('\n'), line.length - 1);
});

test('no line when an argument, env value or workdir holds a newline, carriage return or NUL', () => {
  for (const bad of ['a\nb', 'a\rb', 'a\0b', '\n', 'x\r\n']) {
    assert.is(launchLine(['echo', bad], {}, undefined), null, JSON.stringify(bad));
    assert.is(launchLine([bad], {}, undefined), null);
    assert.is(launchLine(['echo'], { K: bad }, undefined), null);
    assert.is(launchLine(['echo'], {}, `/tmp/${bad}`), null);
  }
});

test('an empty workdir means no cd', () => {
  assert.is(launchLine(['true'], {}, ''), "exec 'true'\n");
  assert.is(launchLine(['true'], {}, undefined), "exec 'true'\n");
});

/** An engine whose execs are recorded and end when the test says so. */
function fakeEngine() {
  const execs: Array<{ opts: ExecOptions; written: string[]; end: (exitCode: number) => void }> = [];
  const engine = {
    exec: (_id: string, opts: ExecOptions): Promise<ExecHandle> => {
      let end!: (exitCode: number) => void;
      const done = new Promise<{ exitCode: number; timedOut: boolean }>((r) => (end = (exitCode) => r({ exitCode, timedOut: false })));
      const stdin = new PassThrough();
      const written: string[] = [];
      stdin.on('data', (b: Buffer) => written.push(b.toString()));
      execs.push({ opts, written, end });
      return Promise.resolve({
        id: `e${execs.length}`,
        stdout: new PassThrough(),
        stderr: new PassThrough(),
        stdin,
        started: Promise.resolve(),
        wait: () => done,
        kill: () => Promise.resolve(),
      });
    },
  } as unknown as Engine;
  return { engine, execs };
}
const tick = () => new Promise((r) => setTimeout(r, 5));

test('a taken launcher is replaced once its command has ended, not while a short command runs', async () => {
  const { engine, execs } = fakeEngine();
  const l = new Launchers(engine, { rearmDelayMs: 10_000 });
  l.arm('c1');
  await tick();
  assert.is(execs.length, 1);
  const h = await l.take('c1', ['echo', 'hi'], {}, undefined, undefined);
  assert.ok(h);
  await tick();
  assert.equal(execs[0]!.written, ["exec 'echo' 'hi'\n"]);
  assert.is(execs.length, 1, 'a replacement was started while the command ran');
  execs[0]!.end(0);
  await tick();
  assert.is(execs.length, 2);
  // The replacement serves the next command.
  const next = await l.take('c1', ['true'], {}, undefined, undefined);
  assert.ok(next);
  await tick();
  assert.equal(execs[1]!.written, ["exec 'true'\n"]);
});

test('a command that runs past the re-arm delay gets its replacement while it runs, and only one', async () => {
  const { engine, execs } = fakeEngine();
  const l = new Launchers(engine, { rearmDelayMs: 20 });
  l.arm('c1');
  await tick();
  await l.take('c1', ['sleep', '9'], {}, undefined, undefined);
  await new Promise((r) => setTimeout(r, 60));
  assert.is(execs.length, 2);
  execs[0]!.end(0);
  await tick();
  assert.is(execs.length, 2);
});

test('a plain exec (no launcher ready) re-arms the same way; a forgotten container is not re-armed', async () => {
  const { engine, execs } = fakeEngine();
  const l = new Launchers(engine, { rearmDelayMs: 10_000 });
  assert.is(await l.take('c1', ['true'], {}, undefined, undefined), null);
  const plain = await engine.exec('c1', { cmd: ['true'], env: {}, user: '1000:1000' });
  l.rearmAfter('c1', plain);
  execs[0]!.end(0);
  await tick();
  assert.is(execs.length, 2, 'no launcher armed after the plain exec ended');
  const h = await l.take('c1', ['sleep', '9'], {}, undefined, undefined);
  assert.ok(h);
  l.forget('c1');
  execs[1]!.end(0);
  await tick();
  assert.is(execs.length, 2, 'a launcher was started in a forgotten container');
});

test.run();
