import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { launchLine, shQuote } from '../../../runtime/sandbox/launcher.ts';

/**
 * The launcher's own script (launcher.ts `LAUNCHER`): read one line from stdin and eval it.
 * The line is fed on stdin exactly as the runtime writes it, so these tests exercise the
 * same read/eval path a sandbox runs.
 */
const LAUNCHER_SCRIPT = 'IFS= read -r l || exit 125; eval "$l"';

function runLine(line: string, cwd = os.tmpdir()): string {
  return execFileSync('/bin/sh', ['-c', LAUNCHER_SCRIPT], { input: line, cwd, stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }).toString('utf8');
}

const NASTY = [
  "'", '"', "it's", '$(id)', '`id`', '${HOME}', '$HOME', 'a; echo pwned', 'a && echo pwned', '| cat /etc/passwd',
  'two  spaces', ' lead', 'trail ', '', '\\', '\\n', '\\\\', '*', '?', '[a]', '~', '#x', '!', '-n', '--', '>out', '<in',
  'ünïcødé ☃ 日本', 'tab\there', "'\"'\"'", "end\\'", '%s%d',
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
    for (const name of ["a b 'c' \"d\" $(id) `x`", '-rf']) {
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

test.run();
