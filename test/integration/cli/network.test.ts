/**
 * Network commands against a real server with networking on (real nft): create, policies applied
 * kubectl-style with a diff against the policy in force, the kernel read-back, isolation.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectorClient, type PolicyVerdict } from '../../../sdk/index.ts';
import { ADMIN_PASSWORD, startApi, type TestApi } from '../../helpers/api.ts';
import { CliUser } from '../../helpers/cli.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('cli-network');
let api: TestApi;
let user: CliUser;
let dir: string;
let net: string;
const director = (args: string[], opts: Parameters<CliUser['run']>[1] = {}) => user.run(args, opts);

const POLICY = `# egress to one test host, nothing from a test range
name: restrictive
outbound:
  - action: allow
    protocol: tcp
    destination: 203.0.113.10
    port: 8080
  - action: deny
    protocol: all
    destination: 198.51.100.0/24
inbound:
  - action: allow
    protocol: all
    source: 127.0.0.1/32
`;

test.before(async () => {
  api = await startApi({ networking: 'on', rateLimitSandbox: 100_000, rateLimitGeneral: 100_000 });
  user = new CliUser();
  dir = mkdtempSync(path.join(tmpdir(), 'director-cli-net-'));
  const login = await director(['login', '--url', api.url, '--username', 'admin', '--password-stdin'], { input: ADMIN_PASSWORD });
  assert.is(login.code, 0, login.stderr);
});
test.after(async () => {
  user?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await api?.close();
});

test('network create, ls and get', async () => {
  const r = await director(['network', 'create', 'cli-net', '-q', '--label', 'env=test']);
  assert.is(r.code, 0, r.stderr);
  net = r.stdout.trim();
  assert.match(net, /^net_[A-Za-z0-9_-]{16}$/);
  const ls = await director(['network', 'ls']);
  assert.match(ls.stdout, /^ID\s+NAME\s+SUBNET\s+STATUS\s+ISOLATED\s+POLICY\s+AGE$/m);
  assert.match(ls.stdout, new RegExp(`^${net}\\s+cli-net\\s+\\S+/24\\s+ready\\s+false\\s+-`, 'm'));
  const got = JSON.parse((await director(['network', 'get', net, '-o', 'json'])).stdout) as {
    name: string;
    labels: Record<string, string>;
  };
  assert.is(got.name, 'cli-net');
  assert.equal(got.labels, { env: 'test' });
});

test('policy apply --dry-run shows the change and applies nothing; apply prints what changed; the same file again is unchanged', async () => {
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, POLICY);
  const added = [
    '  + inbound allow all from 127.0.0.1/32',
    '  + outbound allow tcp to 203.0.113.10/32 port 8080',
    '  + outbound deny all to 198.51.100.0/24',
  ];
  const dry = await director(['network', 'policy', 'apply', net, '-f', file, '--dry-run']);
  assert.is(dry.code, 0, dry.stderr);
  assert.is(
    dry.stdout,
    [
      `network ${net} policy "restrictive" would change (dry run):`,
      '  ~ policy: (none) -> restrictive',
      '  ~ mode: (none) -> enforce',
      '  ~ logging: (none) -> true',
      ...added,
      '',
    ].join('\n'),
  );
  const untouched = JSON.parse((await director(['network', 'policy', 'get', net, '-o', 'json'])).stdout) as { mode: unknown };
  assert.is(untouched.mode, null, 'the dry run applied the policy');
  const applied = await director(['network', 'policy', 'apply', net, '-f', file]);
  assert.is(applied.code, 0, applied.stderr);
  assert.is(applied.stdout.split('\n')[0], `network ${net} policy "restrictive" configured`);
  for (const l of added) assert.ok(applied.stdout.includes(l), l);
  const again = await director(['network', 'policy', 'apply', net, '-f', file]);
  assert.is(again.stdout, `network ${net} policy "restrictive" unchanged\n`);
  const dryAgain = await director(['network', 'policy', 'apply', net, '-f', file, '--dry-run']);
  assert.is(dryAgain.stdout, `network ${net} policy "restrictive" unchanged (dry run)\n`);
  writeFileSync(file, POLICY.replace('8080', '8443'));
  const changed = await director(['network', 'policy', 'apply', net, '-f', file, '-o', 'json']);
  const diff = JSON.parse(changed.stdout) as { changed: boolean; lines: string[]; policyInForce: { outbound: { port?: number }[] } };
  assert.equal(diff.lines, ['- outbound allow tcp to 203.0.113.10/32 port 8080', '+ outbound allow tcp to 203.0.113.10/32 port 8443']);
  assert.ok(diff.policyInForce.outbound.some((r) => r.port === 8443));
});

test('policy get reads the policy back from the kernel, rules with their counters', async () => {
  const r = await director(['network', 'policy', 'get', net]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Mode\s+enforce$/m);
  assert.match(r.stdout, /^DIRECTION\s+#\s+ACTION\s+PROTO\s+SOURCE\s+DESTINATION\s+PORT\s+PACKETS\s+BYTES$/m);
  assert.match(r.stdout, /^outbound\s+0\s+allow\s+tcp\s+any\s+203\.0\.113\.10\/32\s+8443\s+\d+\s+\S+$/m);
  assert.match(r.stdout, /^inbound\s+0\s+allow\s+all\s+127\.0\.0\.1\/32\s+any\s+any\s+\d+/m);
});

test('policy test: the verdict for one connection from the rules in force, the same as the SDK answers', async () => {
  const allowed = await director(['network', 'policy', 'test', net, '--to', '203.0.113.10:8443']);
  assert.is(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stdout, /^Verdict\s+allow$/m);
  assert.match(allowed.stdout, /^Passes\s+true$/m);
  assert.match(allowed.stdout, /^Decided by\s+network rule outbound\[0\] \(\S+\)$/m);
  assert.match(allowed.stdout, /^Chain\s+out$/m);
  const denied = await director(['network', 'policy', 'test', net, '--to', '198.51.100.7', '--port', '80', '-o', 'json']);
  assert.is(denied.code, 0, denied.stderr);
  const v = JSON.parse(denied.stdout) as PolicyVerdict;
  assert.is(v.verdict, 'deny');
  assert.is(v.passes, false);
  assert.is(v.decidedBy.rule, 'outbound[1]');
  const inbound = JSON.parse(
    (await director(['network', 'policy', 'test', net, '--from', '127.0.0.1', '--port', '22', '-o', 'json'])).stdout,
  ) as PolicyVerdict;
  assert.is(inbound.chain, 'in');
  assert.is(inbound.decidedBy.rule, 'inbound[0]');
  const client = await DirectorClient.login({ baseURL: api.url, username: 'admin', password: ADMIN_PASSWORD });
  const viaSdk = await client.networks.ref(net).testPolicy({ direction: 'outbound', protocol: 'tcp', address: '198.51.100.7', port: 80 });
  assert.equal(viaSdk, v);
  const usage = await director(['network', 'policy', 'test', net, '--to', '203.0.113.10']);
  assert.is(usage.code, 2, usage.stderr);
  assert.match(usage.stderr, /tcp needs a port/);
});

test('a policy the API refuses names the field; a file without a name is a usage error', async () => {
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ name: 'bad', outbound: [{ action: 'allow', protocol: 'smtp' }] }));
  const refused = await director(['network', 'policy', 'apply', net, '-f', bad]);
  assert.is(refused.code, 1);
  assert.match(refused.stderr.trim(), /^error: VALIDATION_ERROR: Invalid .*outbound/);
  writeFileSync(bad, JSON.stringify({ outbound: [] }));
  assert.is((await director(['network', 'policy', 'apply', net, '-f', bad])).code, 2);
});

test('isolate and release; rm refuses a network in use unless --force', async () => {
  const iso = await director(['network', 'isolate', net]);
  assert.is(iso.stdout, `network ${net} isolated\n`);
  assert.match((await director(['network', 'get', net])).stdout, /^Isolated\s+true$/m);
  assert.is((await director(['network', 'release', net])).stdout, `network ${net} released\n`);
  const sbx = await director(['sandbox', 'create', '-q', '--image', BUSYBOX, '--network', net]);
  assert.is(sbx.code, 0, sbx.stderr);
  const id = sbx.stdout.trim();
  const info = JSON.parse((await director(['sandbox', 'get', id, '-o', 'json'])).stdout) as { networkId: string };
  assert.is(info.networkId, net);
  const busy = await director(['network', 'rm', net]);
  assert.is(busy.code, 1);
  assert.match(busy.stderr.trim(), /^error: CONFLICT: /);
  const forced = await director(['network', 'rm', net, '--force']);
  assert.is(forced.code, 0, forced.stderr);
  assert.is(forced.stdout, `network ${net} deleted\n`);
  assert.is((await director(['sandbox', 'get', id])).code, 1);
});

test.run();
