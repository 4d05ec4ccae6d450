/**
 * DenyLogReader against the real kernel log. A network namespace this test creates holds a
 * throwaway `inet director_test_*` table whose output chain logs with Director's prefixes and
 * drops TCP to 198.51.100.7; the route there goes to a veth pair inside the same namespace, so
 * nothing leaves it. The kernel only writes nf_log lines from a non-init namespace with
 * `net.netfilter.nf_log_all_netns=1`: the test sets it and restores the old value.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DenyLogReader, type TimedDenyRecord } from '../../../runtime/network/denylog.ts';

const test = suite('denylog (kernel)');
const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : spawnSync('nft', ['--version']).status !== 0
      ? 'nft is not installed'
      : spawnSync('ip', ['-V']).status !== 0
        ? 'iproute2 is not installed'
        : null;
const it = (name: string, fn: () => Promise<void> | void) => (skip ? test.skip(name, fn) : test(name, fn));
if (skip) console.log(`skipping deny log tests: ${skip}`);

const id = randomBytes(3).toString('hex');
const NS = `dlt-${id}`;
const IF = { a: `dla${id}`, b: `dlb${id}` };
const TABLE = `director_test_${id}`;
const TARGET = '198.51.100.7';
const SYSCTL = '/proc/sys/net/netfilter/nf_log_all_netns';
const nftFile = path.join(tmpdir(), `${TABLE}.nft`);
let sysctlBefore: string | null = null;
const reader = new DenyLogReader({ pollMs: 20 });
const records: TimedDenyRecord[] = [];

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function setUp(): Promise<void> {
  sysctlBefore = readFileSync(SYSCTL, 'utf8').trim();
  writeFileSync(SYSCTL, '1');
  ip(['netns', 'add', NS]);
  ip(['-n', NS, 'link', 'set', 'lo', 'up']);
  ip(['-n', NS, 'link', 'add', IF.a, 'type', 'veth', 'peer', 'name', IF.b]);
  ip(['-n', NS, 'link', 'set', IF.a, 'up']);
  ip(['-n', NS, 'link', 'set', IF.b, 'up']);
  ip(['-n', NS, 'addr', 'add', '192.0.2.1/24', 'dev', IF.a]);
  ip(['-n', NS, 'route', 'add', '198.51.100.0/24', 'dev', IF.a]);
  writeFileSync(
    nftFile,
    `table inet ${TABLE} {
  chain egress_test {
    type filter hook output priority 0; policy accept;
    ip daddr ${TARGET} tcp dport 4444 log prefix "dir:abcd1234:o0: " drop
    ip daddr ${TARGET} tcp dport 4445 log prefix "dira:abcd1234:o.default: " drop
  }
}
`,
  );
  const r = spawnSync('ip', ['netns', 'exec', NS, 'nft', '-f', nftFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft -f: ${r.stderr}`);
  await reader.start((rec) => {
    if (rec.short === 'abcd1234') records.push(rec);
  });
}

test.before(async () => {
  if (skip) return;
  // uvu's runner swallows a before-hook error (after still runs): print it.
  await setUp().catch((err: unknown) => {
    console.error('deny log test setup failed:', err);
    throw err;
  });
});

test.after(async () => {
  if (skip) return;
  await reader.stop();
  // Deleting the namespace takes its interfaces, route and nft table with it.
  spawnSync('ip', ['netns', 'del', NS]);
  if (sysctlBefore !== null) writeFileSync(SYSCTL, sysctlBefore);
  rmSync(nftFile, { force: true });
});

/** One TCP SYN from inside the namespace; the table drops it before it reaches the veth. */
async function connectFromNamespace(port: number): Promise<void> {
  const route = ip(['-n', NS, 'route', 'get', TARGET]);
  assert.match(route, `dev ${IF.a}`, 'the fake route stays inside the namespace');
  const client = spawn(
    'ip',
    [
      'netns',
      'exec',
      NS,
      process.execPath,
      '-e',
      `require('node:net').connect(${port}, '${TARGET}').on('error', () => {}); setTimeout(() => process.exit(0), 300);`,
    ],
    { stdio: 'ignore' },
  );
  await once(client, 'exit');
}

async function waitFor(pred: (r: TimedDenyRecord) => boolean, ms = 5000): Promise<TimedDenyRecord> {
  const until = Date.now() + ms;
  for (;;) {
    const hit = records.find(pred);
    if (hit) return hit;
    if (Date.now() > until) throw new Error(`no matching deny record within ${ms} ms (have ${JSON.stringify(records)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('delivers an enforced drop logged in a namespace as a structured record', async () => {
  await connectFromNamespace(4444);
  const r = await waitFor((x) => x.dstPort === 4444);
  assert.equal(
    [r.audit, r.short, r.rawTag, r.tag, r.dst, r.src, r.proto, r.outIf, r.inIf],
    [false, 'abcd1234', 'o0', { kind: 'rule', direction: 'outbound', index: 0 }, TARGET, '192.0.2.1', 'tcp', IF.a, ''],
  );
  assert.ok(r.srcPort !== null && r.srcPort > 0);
  assert.ok(r.bytes >= 40);
  const uptimeUsec = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1e6;
  assert.ok(Math.abs(uptimeUsec - r.usec) < 10e6, 'timestamp is on the boot clock');
});

it('marks audit-mode prefixes and keeps delivering after the backlog', async () => {
  await connectFromNamespace(4445);
  const r = await waitFor((x) => x.dstPort === 4445);
  assert.is(r.audit, true);
  assert.equal(r.tag, { kind: 'guard', chain: 'out', guard: 'default' });
});

it('stop() returns promptly although nothing more is logged', async () => {
  const other = new DenyLogReader({ pollMs: 1000 });
  await other.start(() => {});
  const t = Date.now();
  await other.stop();
  assert.ok(Date.now() - t < 200, `stop took ${Date.now() - t} ms`);
});

test.run();
