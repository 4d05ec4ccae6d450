/**
 * The compiler against the real nft and kernel: documents check and apply, the table reads back
 * as the policy that was compiled, per-network transactions leave other networks alone and
 * removal leaves nothing behind. Works on a throwaway `director_test_*` table only.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { applyNetwork, readTable, removeNetwork } from '../../../netfilter/apply.ts';
import { addResolvedAddresses, compileDeleteTable, compileNetwork, compileTable } from '../../../netfilter/compile.ts';
import { DEFAULT_ALWAYS_DENIED, type NetfilterInput } from '../../../netfilter/model.ts';
import { NftError, applyDocument, checkDocument, listTable, tableExists } from '../../../netfilter/nft.ts';
import { NetlinkHelpers } from '../../../netfilter/netlink-helpers.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { essentials, expectedRules, fullPolicy, network, twoNetworks } from '../../unit/netfilter/fixtures.ts';
import { nftUnavailable, tablesNow, testTableName } from './helpers.ts';

const test = suite('netfilter nft');
const skip = nftUnavailable();
const it = (name: string, fn: () => Promise<void> | void) => (skip ? test.skip(name, fn) : test(name, fn));
if (skip) console.log(`skipping netfilter nft tests: ${skip}`);

const T = testTableName();
const dockerTablesBefore = skip ? [] : tablesNow().filter((t) => !t.includes('director_test_'));

/** Per-network changes go over netlink, as the runtime's firewall applies them. */
const opts = { netlink: new NetlinkHelpers() };

test.after(async () => {
  opts.netlink.close();
  if (!skip) await applyDocument(compileDeleteTable(T));
});

/** Rules of a chain with their kernel handles: unchanged handles prove a chain was not touched. */
async function chainRules(chain: string): Promise<string> {
  const listing = (await listTable(T)) as { nftables: { rule?: { chain: string } }[] };
  return JSON.stringify(listing.nftables.filter((i) => i.rule?.chain === chain));
}

it('nft -c accepts every shape of compiled table without creating it', async () => {
  const variants: NetfilterInput[] = [
    twoNetworks(T),
    twoNetworks(T, { isolated: true, policy: fullPolicy({ mode: 'audit', logging: false, metrics: false }) }, { dns: null }),
    { table: T, alwaysDenied: { v4: [], v6: [] }, networks: [] },
    {
      table: T,
      alwaysDenied: DEFAULT_ALWAYS_DENIED,
      networks: [network('v4only', 3, validateNetworkPolicy({ name: 'p' }), { subnetV6: undefined })],
    },
  ];
  for (const v of variants) await checkDocument(compileTable(v));
  assert.not.ok(await tableExists(T));
});

it('applies a table that reads back as the compiled policy', async () => {
  const input = twoNetworks(T);
  await applyDocument(compileTable(input));
  const view = await readTable(T);
  const a = view.networks.aaaa1111!;
  const policy = input.networks[0]!.policy!;
  assert.equal(essentials(a.outbound), expectedRules(policy, 'outbound'));
  assert.equal(essentials(a.inbound), expectedRules(policy, 'inbound'));
  assert.is(a.mode, 'enforce');
  assert.is(a.bridge, 'dt-aaaa1111');
  assert.equal(
    Object.values(a.sets)
      .map((s) => s.host)
      .sort(),
    ['*.pythonhosted.org', '*.pythonhosted.org', 'pypi.org', 'pypi.org'],
  );
  assert.equal(a.counters.denied, { packets: 0, bytes: 0 });
  assert.is(view.networks.bbbb2222!.mode, null);
  assert.equal(view.bridges.sort(), ['dt-aaaa1111', 'dt-bbbb2222']);
  assert.equal([...view.alwaysDenied].sort(), [...DEFAULT_ALWAYS_DENIED.v4, ...DEFAULT_ALWAYS_DENIED.v6].sort());
  // The whole-table document applies again over an existing table (boot after a crash).
  await applyDocument(compileTable(input));
});

it("resolved addresses land in the rule's sets with their timeout", async () => {
  const a = twoNetworks(T).networks[0]!;
  await applyDocument(
    addResolvedAddresses(T, a, { host: 'pypi.org' }, [
      { addr: '192.0.2.7', timeoutS: 120 },
      { addr: '2001:db8::7', timeoutS: 60 },
    ]),
  );
  const sets = Object.values((await readTable(T)).networks.aaaa1111!.sets).filter((s) => s.host === 'pypi.org');
  const elements = sets.flatMap((s) => s.elements);
  assert.equal(elements.map((e) => [e.addr, e.timeoutS]).sort(), [
    ['192.0.2.7', 120],
    ['2001:db8::7', 60],
  ]);
  assert.ok(elements.every((e) => e.expiresS !== null && e.expiresS <= e.timeoutS!));
});

it('a network change is one transaction that leaves the other network untouched', async () => {
  const input = twoNetworks(T);
  const otherChains = ['out', 'in', 'host'].flatMap((c) => [`net_bbbb2222_${c}`, `net_bbbb2222_${c}_g0`]);
  const otherBefore = await Promise.all(otherChains.map(chainRules));
  const policy = validateNetworkPolicy({
    name: 'changed',
    mode: 'audit',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: 'pypi.org', port: 443 },
      { action: 'deny', protocol: 'udp', destination: '198.51.100.0/24', port: { from: 1000, to: 2000 } },
    ],
  });
  const changed = { ...input.networks[0]!, policy, isolated: true };
  const view0 = await readTable(T);
  await checkDocument(compileNetwork(input, changed, view0.networks.aaaa1111!.generation! + 1));
  await applyNetwork(input, changed, opts);
  const otherAfter = await Promise.all(otherChains.map(chainRules));
  assert.ok(
    otherAfter.every((r, i) => r === otherBefore[i]),
    "the other network's rules keep their handles",
  );
  const a = (await readTable(T)).networks.aaaa1111!;
  assert.equal(essentials(a.outbound), expectedRules(policy, 'outbound'));
  assert.is(a.mode, 'audit');
  assert.is(a.isolated, true);
  const sets = Object.values(a.sets);
  assert.equal(
    sets.map((s) => s.host),
    ['pypi.org', 'pypi.org'],
    'the *.pythonhosted.org sets are gone',
  );
  assert.equal(sets.flatMap((s) => s.elements.map((e) => e.addr)).sort(), ['192.0.2.7', '2001:db8::7'], 'pypi.org kept its addresses');
});

it('removing a network leaves no chain, set, map element or counter of it', async () => {
  const input = twoNetworks(T);
  const otherBefore = await chainRules('net_bbbb2222_out');
  await removeNetwork(T, input.networks[0]!, opts);
  const listing = JSON.stringify(await listTable(T));
  for (const trace of ['aaaa1111', 'dt-aaaa1111', '10.250.1.0', 'fd00:dead:1::']) assert.not.ok(listing.includes(trace), trace);
  assert.ok((await chainRules('net_bbbb2222_out')) === otherBefore);
  await removeNetwork(T, input.networks[0]!, opts);
  // And it comes back with a network transaction alone.
  await applyNetwork(input, input.networks[0]!, opts);
  assert.equal(essentials((await readTable(T)).networks.aaaa1111!.outbound), expectedRules(input.networks[0]!.policy!, 'outbound'));
});

it("a failing transaction changes nothing and reports nft's error", async () => {
  const before = JSON.stringify(await listTable(T));
  const input = twoNetworks(T);
  const doc = compileNetwork(input, { ...input.networks[0]!, isolated: true }, (await readTable(T)).networks.aaaa1111!.generation! + 1);
  doc.nftables.push({ add: { rule: { family: 'inet', table: T, chain: 'no_such_chain', expr: [{ accept: null }] } } });
  try {
    await applyDocument(doc, opts);
    assert.unreachable('applied');
  } catch (err) {
    assert.instance(err, NftError);
    assert.match((err as NftError).stderr, /No such file or directory/);
    assert.is((err as NftError).code, 'INTERNAL_ERROR');
  }
  assert.ok(JSON.stringify(await listTable(T)) === before, 'atomic: nothing applied');
});

it("Docker's tables are still there, and the test table is the only one it made", () => {
  const now = tablesNow();
  for (const t of dockerTablesBefore) assert.ok(now.includes(t), t);
  assert.ok(now.includes(`inet ${T}`));
});

test.run();
