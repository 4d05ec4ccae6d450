import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addResolvedAddresses, compileNetwork, compileRemoveNetwork, compileTable } from '../../../netfilter/compile.ts';
import { parseObjectName } from '../../../netfilter/names.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { DirectorError } from '../../../runtime/errors.ts';
import { NftSim, commandTargets, fullPolicy, twoNetworks } from './fixtures.ts';

const test = suite('transactions');
const T = 'director_unit';

function booted(input = twoNetworks(T)): NftSim {
  const sim = new NftSim();
  sim.apply(compileTable(input));
  return sim;
}

const snapshotOf = (sim: NftSim, short: string) => JSON.stringify({
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
  assert.equal(commandTargets(compileTable(twoNetworks(T))).slice(0, 3).map((c) => `${c.op} ${c.kind}`), ['add table', 'delete table', 'add table']);
});

test('a network change names only that network\'s objects and leaves the other network untouched', () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const otherBefore = snapshotOf(sim, 'bbbb2222');
  const changed = { ...input.networks[0]!, policy: fullPolicy({ mode: 'audit' }), isolated: true };
  const doc = compileNetwork(input, changed, [...sim.sets.keys()].filter((s) => s.startsWith('net_aaaa1111')));
  for (const { op, kind, body } of commandTargets(doc)) {
    const name = String(body.name ?? body.chain);
    if (kind === 'element') {
      assert.is(op, 'add');
      assert.ok(JSON.stringify(body.elem).includes('aaaa1111') || ['subnets_v4', 'subnets_v6'].includes(name), name);
      continue;
    }
    assert.is(parseObjectName(name)?.short, 'aaaa1111', `${op} ${kind} ${name}`);
    assert.not.equal(op, 'delete', 'no existing set was dropped');
  }
  sim.apply(doc);
  assert.ok(snapshotOf(sim, 'bbbb2222') === otherBefore, 'other network untouched');
  assert.ok(sim.rules.get('net_aaaa1111_out')![0]!.comment === 'o.isolate');
});

test('a network change flushes before refilling, so applying it twice gives the same chains', () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const doc = compileNetwork(input, input.networks[0]!);
  sim.apply(doc);
  const once = snapshotOf(sim, 'aaaa1111').replace(/"handle":\d+/g, '');
  sim.apply(doc);
  assert.ok(snapshotOf(sim, 'aaaa1111').replace(/"handle":\d+/g, '') === once, 'same chains');
  assert.is(sim.rules.get('filter_forward')!.length, 2, 'base rules are not duplicated');
});

test('name sets still needed keep their resolved addresses; sets no longer needed are deleted', () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const a = input.networks[0]!;
  sim.apply(addResolvedAddresses(T, a, { direction: 'outbound', index: 0 }, [{ addr: '192.0.2.10', timeoutS: 60 }]));
  sim.apply(addResolvedAddresses(T, a, { host: 'pypi.org' }, [{ addr: '192.0.2.20', timeoutS: 60 }]));
  const previous = [...sim.sets.keys()].filter((s) => s.startsWith('net_aaaa1111_'));
  assert.is(previous.length, 4);
  const policy = validateNetworkPolicy({ name: 'p', outbound: [{ action: 'allow', protocol: 'tcp', destination: '*.pythonhosted.org', port: 443 }] });
  sim.apply(compileNetwork(input, { ...a, policy }, previous));
  const now = [...sim.sets.entries()].filter(([s]) => s.startsWith('net_aaaa1111_'));
  assert.is(now.length, 2);
  assert.equal(now.flatMap(([, s]) => s.elem), [{ elem: { val: '192.0.2.10', timeout: 60 } }]);
});

test('removing a network leaves no chain, set, counter, map or set element of it, and is idempotent', () => {
  const input = twoNetworks(T);
  const sim = booted(input);
  const a = input.networks[0]!;
  const otherBefore = snapshotOf(sim, 'bbbb2222');
  const doc = compileRemoveNetwork(T, a, [...sim.sets.keys()].filter((s) => s.startsWith('net_aaaa1111_')));
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
    assert.ok(cmds.slice(0, i).some((p) => p.op === 'add' && p.kind === c.kind && p.body.name === c.body.name), `${c.kind} ${String(c.body.name)}`);
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
  const policy = validateNetworkPolicy({ name: 'p', outbound: [
    { action: 'allow', protocol: 'udp', source: '10.250.1.0/28', destination: 'ntp.example.org', port: 123 },
    { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' },
  ] });
  const a = { ...twoNetworks(T).networks[0]!, policy };
  assert.equal(addResolvedAddresses(T, a, { host: 'ntp.example.org' }, [{ addr: '2001:db8::1', timeoutS: 5 }]), { nftables: [] });
  assert.throws(() => addResolvedAddresses(T, a, { direction: 'outbound', index: 1 }, []), (e: unknown) => e instanceof DirectorError && /not a host-name rule/.test(e.message));
  assert.throws(() => addResolvedAddresses(T, a, { host: 'other.example.org' }, []), /no rule for host/);
  assert.throws(() => addResolvedAddresses(T, a, { host: 'ntp.example.org' }, [{ addr: 'nope', timeoutS: 5 }]), /not an IP address/);
});

test.run();
