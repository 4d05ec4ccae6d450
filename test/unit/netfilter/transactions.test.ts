import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addResolvedAddresses, compileNetwork, compileRemoveNetwork, compileRetire, compileTable } from '../../../netfilter/compile.ts';
import { parseObjectName } from '../../../netfilter/names.ts';
import { parseTable } from '../../../netfilter/readback.ts';
import { unusedNameSets } from '../../../netfilter/rules.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { DirectorError } from '../../../core/errors.ts';
import { NftSim, commandTargets, fullPolicy, twoNetworks } from './fixtures.ts';

const test = suite('transactions');
const T = 'director_unit';

function booted(input = twoNetworks(T)): NftSim {
  const sim = new NftSim();
  sim.apply(compileTable(input));
  return sim;
}

const snapshotOf = (sim: NftSim, short: string) =>
  JSON.stringify({
    chains: [...sim.rules].filter(([c]) => c.startsWith(`net_${short}_`)),
    sets: [...sim.sets].filter(([s]) => s.startsWith(`net_${short}_`)),
    counters: [...sim.counters.keys()].filter((c) => c.startsWith(`net_${short}_`)),
    maps: [...sim.maps.values()].map((m) => m.elem.filter((e) => JSON.stringify(e).includes(short))),
  });

test('compileTable replaces the whole table in one document and can be applied twice', () => {
  const sim = booted();
  const listing = () => JSON.stringify(sim.list()).replace(/"handle":\d+/g, '');
  const before = listing();
  sim.apply(compileTable(twoNetworks(T)));
  assert.ok(listing() === before, 'same table after a second apply');
  assert.equal(
    commandTargets(compileTable(twoNetworks(T)))
      .slice(0, 3)
      .map((c) => `${c.op} ${c.kind}`),
    ['add table', 'delete table', 'add table'],
  );
});

const entryTargets = (sim: NftSim, short: string) =>
  ['out', 'in', 'host'].map((k) => sim.rules.get(`net_${short}_${k}`)!.map((r) => JSON.stringify(r.expr)));

test("a network change names only that network's objects, deletes nothing and leaves the other network untouched", () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const otherBefore = snapshotOf(sim, 'bbbb2222');
  const changed = { ...input.networks[0]!, policy: fullPolicy({ mode: 'audit' }), isolated: true };
  const doc = compileNetwork(input, changed, 1);
  for (const { op, kind, body } of commandTargets(doc)) {
    const name = String(body.name ?? body.chain);
    assert.not.equal(op, 'delete', `${kind} ${name}: a deletion costs the kernel a grace period`);
    if (op === 'flush') assert.match(name, /_g1$/, "only the new generation's (empty) chains are flushed");
    // Re-adding an existing chain is an update the kernel commits slowly: only new objects are added.
    if (kind === 'chain') assert.match(name, /_g1$/, `add ${name}`);
    assert.ok(kind !== 'element' && kind !== 'counter', `${kind} ${name} exists already`);
    assert.is(parseObjectName(name)?.short, 'aaaa1111', `${op} ${kind} ${name}`);
  }
  sim.apply(doc);
  assert.ok(snapshotOf(sim, 'bbbb2222') === otherBefore, 'other network untouched');
  assert.ok(sim.rules.get('net_aaaa1111_out_g1')![0]!.comment === 'o.isolate');
  // The new generation is first in every entry chain; the old one waits behind it, unreachable.
  for (const [i, k] of ['out', 'in', 'host'].entries()) {
    assert.equal(entryTargets(sim, 'aaaa1111')[i], [
      `[{"goto":{"target":"net_aaaa1111_${k}_g1"}}]`,
      `[{"goto":{"target":"net_aaaa1111_${k}_g0"}}]`,
    ]);
  }
  const view = parseTable(sim.list()).networks.aaaa1111!;
  assert.is(view.isolated, true);
  assert.is(view.mode, 'audit');
  assert.is(view.generation, 1);
  assert.equal(view.generations, [0, 1]);
  // Applying the same document again refills the same generation: no duplicated rules.
  const rulesNow = () => JSON.stringify(sim.rules.get('net_aaaa1111_out_g1')).replace(/"handle":\d+/g, '');
  const once = rulesNow();
  sim.apply(doc);
  assert.ok(rulesNow() === once, 'same generation chain');
  assert.is(sim.rules.get('filter_forward')!.length, 2, 'base rules are not duplicated');
});

test('retiring leaves the entry chains with one goto and deletes the replaced generations and unused sets', () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const a = input.networks[0]!;
  sim.apply(addResolvedAddresses(T, a, { direction: 'outbound', index: 0 }, [{ addr: '192.0.2.10', timeoutS: 60 }]));
  sim.apply(addResolvedAddresses(T, a, { host: 'pypi.org' }, [{ addr: '192.0.2.20', timeoutS: 60 }]));
  const previous = [...sim.sets.keys()].filter((s) => s.startsWith('net_aaaa1111_'));
  assert.is(previous.length, 4);
  const policy = validateNetworkPolicy({
    name: 'p',
    outbound: [{ action: 'allow', protocol: 'tcp', destination: '*.pythonhosted.org', port: 443 }],
  });
  const changed = { ...a, policy };
  sim.apply(compileNetwork(input, changed, 1));
  sim.apply(compileNetwork(input, { ...changed, isolated: true }, 2));
  const inForceOf = (v = parseTable(sim.list()).networks.aaaa1111!) =>
    JSON.stringify([v.outbound, v.inbound, v.guards, v.isolated, v.mode, v.generation]);
  const inForce = inForceOf();
  const stale = unusedNameSets(changed, previous);
  assert.is(stale.length, 2);
  const doc = compileRetire(T, 'aaaa1111', 2, { retired: [0, 1], staleSets: stale });
  sim.apply(doc);
  for (const [i, k] of ['out', 'in', 'host'].entries())
    assert.equal(entryTargets(sim, 'aaaa1111')[i], [`[{"goto":{"target":"net_aaaa1111_${k}_g2"}}]`]);
  assert.equal([...sim.chains.keys()].filter((c) => c.startsWith('net_aaaa1111_')).sort(), [
    'net_aaaa1111_host',
    'net_aaaa1111_host_g2',
    'net_aaaa1111_in',
    'net_aaaa1111_in_g2',
    'net_aaaa1111_out',
    'net_aaaa1111_out_g2',
  ]);
  const now = [...sim.sets.entries()].filter(([s]) => s.startsWith('net_aaaa1111_'));
  assert.is(now.length, 2);
  assert.equal(
    now.flatMap(([, s]) => s.elem),
    [{ elem: { val: '192.0.2.10', timeout: 60 } }],
    'the set still used kept its addresses',
  );
  assert.is(inForceOf(), inForce, 'retiring changes nothing in force');
  assert.equal(parseTable(sim.list()).networks.aaaa1111!.generations, [2]);
  // Idempotent, and other networks' names are refused.
  sim.apply(doc);
  assert.throws(
    () => compileRetire(T, 'aaaa1111', 2, { retired: [], staleSets: ['net_bbbb2222_h0123456789_v4'] }),
    /not a name set of network aaaa1111/,
  );
  // Malformed requests are refused before anything is built; the generation put in force is never deleted.
  assert.throws(() => compileRetire(T, 'AAAA;1111', 2, { retired: [], staleSets: [] }), /1-12 characters/);
  assert.throws(() => compileRetire(T, 'aaaa1111', -1, { retired: [], staleSets: [] }), /integer from 0/);
  assert.throws(() => compileRetire(T, 'aaaa1111', 2, { retired: [1.5], staleSets: [] }), /integer from 0/);
  assert.throws(() => compileRetire(T, 'aaaa1111', 2, { retired: [1, 2], staleSets: [] }), /generation 2 is the one put in force/);
});

test('removing a network leaves no chain, set, counter, map or set element of it, and is idempotent', () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const a = input.networks[0]!;
  const otherBefore = snapshotOf(sim, 'bbbb2222');
  sim.apply(compileNetwork(input, { ...a, isolated: true }, 1));
  const doc = compileRemoveNetwork(T, a, { gens: [0, 1], sets: [...sim.sets.keys()].filter((s) => s.startsWith('net_aaaa1111_')) });
  sim.apply(doc);
  const listing = JSON.stringify(sim.list());
  for (const trace of ['aaaa1111', 'dt-aaaa1111', '10.250.1.0', 'fd00:dead:1::']) assert.not.ok(listing.includes(trace), trace);
  assert.ok(snapshotOf(sim, 'bbbb2222') === otherBefore, 'other network untouched');
  sim.apply(doc);
  sim.apply(compileRemoveNetwork(T, a));
  // Every delete is preceded by an add of the same object.
  const cmds = commandTargets(doc);
  cmds.forEach((c, i) => {
    if (c.op !== 'delete' || c.kind === 'chain') return;
    assert.ok(
      cmds.slice(0, i).some((p) => p.op === 'add' && p.kind === c.kind && p.body.name === c.body.name),
      `${c.kind} ${String(c.body.name)}`,
    );
  });
});

test('resolved addresses go to the set of their family, with whole-second timeouts', () => {
  const a = twoNetworks(T).networks[0]!;
  const doc = addResolvedAddresses(T, a, { direction: 'outbound', index: 5 }, [
    { addr: '192.0.2.1', timeoutS: 29.2 },
    { addr: '2001:DB8::1', timeoutS: 300 },
    { addr: '192.0.2.2', timeoutS: 0.1 },
  ]);
  assert.is(doc.nftables.length, 2);
  const [v4, v6] = commandTargets(doc).map((c) => c.body) as [Record<string, unknown>, Record<string, unknown>];
  assert.match(String(v4.name), /^net_aaaa1111_h[0-9a-f]{10}_v4$/);
  assert.equal(v4.elem, [{ elem: { val: '192.0.2.1', timeout: 30 } }, { elem: { val: '192.0.2.2', timeout: 1 } }]);
  assert.equal(v6.elem, [{ elem: { val: '2001:db8::1', timeout: 300 } }]);
  assert.is(String(v6.name).replace('_v6', ''), String(v4.name).replace('_v4', ''));
});

test('resolved addresses are refused for rules without a host name and skipped for families the rule does not cover', () => {
  const policy = validateNetworkPolicy({
    name: 'p',
    outbound: [
      { action: 'allow', protocol: 'udp', source: '10.250.1.0/28', destination: 'ntp.example.org', port: 123 },
      { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' },
    ],
  });
  const a = { ...twoNetworks(T).networks[0]!, policy };
  assert.equal(addResolvedAddresses(T, a, { host: 'ntp.example.org' }, [{ addr: '2001:db8::1', timeoutS: 5 }]), { nftables: [] });
  assert.throws(
    () => addResolvedAddresses(T, a, { direction: 'outbound', index: 1 }, []),
    (e: unknown) => e instanceof DirectorError && /not a host-name rule/.test(e.message),
  );
  assert.throws(() => addResolvedAddresses(T, a, { host: 'other.example.org' }, []), /no rule for host/);
  assert.throws(() => addResolvedAddresses(T, a, { host: 'ntp.example.org' }, [{ addr: 'nope', timeoutS: 5 }]), /not an IP address/);
});

test.run();
