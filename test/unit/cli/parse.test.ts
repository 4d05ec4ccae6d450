import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../../cli/errors.ts';
import { durationMs, keyValues, positiveInt, sinceTime } from '../../../cli/parse.ts';
import { planCopy } from '../../../cli/commands/cp.ts';
import { exitStatusOf } from '../../../cli/commands/sandbox.ts';
import { safeParts } from '../../../cli/tar.ts';

const usage = (fn: () => unknown, pattern: RegExp) => {
  try {
    fn();
  } catch (err) {
    assert.instance(err, UsageError);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a UsageError');
};

test('durations in ms, s, m, h, d; plain numbers are milliseconds', () => {
  assert.is(durationMs('--timeout', '1500'), 1500);
  assert.is(durationMs('--timeout', '30s'), 30_000);
  assert.is(durationMs('--timeout', '1.5m'), 90_000);
  assert.is(durationMs('--timeout', '2h'), 7_200_000);
  assert.is(durationMs('--timeout', '1d'), 86_400_000);
  usage(() => durationMs('--timeout', '5 minutes'), /--timeout must be a duration/);
  usage(() => durationMs('--timeout', '-1s'), /--timeout/);
});

test('--since takes a duration back from now or an ISO time', () => {
  const now = Date.parse('2026-06-01T12:00:00Z');
  assert.is(sinceTime('--since', '1h', now), '2026-06-01T11:00:00.000Z');
  assert.is(sinceTime('--since', '2026-05-01T00:00:00+02:00', now), '2026-04-30T22:00:00.000Z');
  usage(() => sinceTime('--since', 'yesterday', now), /--since must be a duration/);
});

test('KEY=VALUE pairs: later wins, the value may hold "="; a pair without a key is refused', () => {
  assert.equal(keyValues('--env', ['A=1', 'B=x=y', 'A=2']), { A: '2', B: 'x=y' });
  assert.is(keyValues('--env', []), undefined);
  usage(() => keyValues('--env', ['novalue']), /--env takes KEY=VALUE/);
  usage(() => keyValues('--label', ['=v']), /--label/);
  usage(() => positiveInt('--limit', '0'), /--limit must be a positive integer/);
});

test('cp: exactly one side is ID:PATH, and the sandbox path is absolute', () => {
  const id = 'sbx_0123456789abcdef';
  assert.equal(planCopy(`${id}:/workspace/out`, './out'), { direction: 'out', sandboxId: id, remote: '/workspace/out', local: './out' });
  assert.equal(planCopy('a.txt', `${id}:/workspace/`), { direction: 'in', sandboxId: id, remote: '/workspace/', local: 'a.txt' });
  usage(() => planCopy('a', 'b'), /one side as ID:PATH/);
  usage(() => planCopy(`${id}:/a`, `${id}:/b`), /only one side/);
  usage(() => planCopy('a', `${id}:rel/path`), /must be absolute/);
});

test('archive names from a sandbox: relative parts only, never absolute or climbing', () => {
  assert.equal(safeParts('app/sub/b.txt'), ['app', 'sub', 'b.txt']);
  assert.equal(safeParts('./app//x'), ['app', 'x']);
  assert.is(safeParts('/etc/passwd'), null);
  assert.is(safeParts('app/../../x'), null);
  assert.is(safeParts('..'), null);
  assert.is(safeParts(''), null);
});

test("exec's exit status: the command's, 124 on timeout, 1 for what a process cannot exit with", () => {
  assert.is(exitStatusOf({ exitCode: 0, timedOut: false }), 0);
  assert.is(exitStatusOf({ exitCode: 3, timedOut: false }), 3);
  assert.is(exitStatusOf({ exitCode: 137, timedOut: true }), 124);
  assert.is(exitStatusOf({ exitCode: -1, timedOut: false }), 1);
});

test.run();
