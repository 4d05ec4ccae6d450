import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../../cli/errors.ts';
import { durationMs, endpoint, keyValues, positiveInt, sinceTime } from '../../../cli/parse.ts';
import { policyTestQuery } from '../../../cli/commands/network.ts';
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

test('HOST[:PORT]: addresses and names, IPv6 in brackets to add a port', () => {
  assert.equal(endpoint('--to', '203.0.113.10:443'), { address: '203.0.113.10', port: 443 });
  assert.equal(endpoint('--to', 'api.example.test:8080'), { host: 'api.example.test', port: 8080 });
  assert.equal(endpoint('--to', '10.0.0.1'), { address: '10.0.0.1' });
  assert.equal(endpoint('--to', 'db.test'), { host: 'db.test' });
  assert.equal(endpoint('--to', '[2001:db8::1]:443'), { address: '2001:db8::1', port: 443 });
  assert.equal(endpoint('--to', '2001:db8::1'), { address: '2001:db8::1' });
  usage(() => endpoint('--to', 'h:0'), /--to takes HOST\[:PORT\].*1-65535/);
  usage(() => endpoint('--to', 'h:https'), /1-65535/);
  usage(() => endpoint('--to', ':443'), /no host/);
  usage(() => endpoint('--to', '[db.test]:443'), /IPv6/);
});

test('policy test: --to is outbound, --from inbound; the port from either place; tcp and udp need one', () => {
  assert.equal(policyTestQuery({ to: '203.0.113.10:443', proto: 'tcp' }), {
    direction: 'outbound',
    protocol: 'tcp',
    address: '203.0.113.10',
    port: 443,
  });
  assert.equal(policyTestQuery({ to: 'api.example.test', port: '53', proto: 'UDP' }), {
    direction: 'outbound',
    protocol: 'udp',
    host: 'api.example.test',
    port: 53,
  });
  assert.equal(policyTestQuery({ from: '198.51.100.7', port: '8080', proto: 'tcp', sandboxAddress: '10.1.0.5' }), {
    direction: 'inbound',
    protocol: 'tcp',
    address: '198.51.100.7',
    port: 8080,
    sandboxAddress: '10.1.0.5',
  });
  assert.equal(policyTestQuery({ to: '203.0.113.10', proto: 'icmp' }), {
    direction: 'outbound',
    protocol: 'icmp',
    address: '203.0.113.10',
  });
  usage(() => policyTestQuery({ proto: 'tcp' }), /exactly one of --to .* or --from/);
  usage(() => policyTestQuery({ to: 'a.test:1', from: '10.0.0.1', proto: 'tcp' }), /exactly one/);
  usage(() => policyTestQuery({ to: 'a.test', proto: 'tcp' }), /tcp needs a port/);
  usage(() => policyTestQuery({ to: 'a.test:1', proto: 'sctp' }), /--proto must be one of tcp, udp, icmp/);
  usage(() => policyTestQuery({ to: 'a.test:1', port: '2', proto: 'tcp' }), /disagrees/);
  usage(() => policyTestQuery({ from: 'a.test', port: '2', proto: 'tcp' }), /--from takes an address only/);
});

test.run();
