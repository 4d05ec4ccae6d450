import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addResolvedAddresses, compileTable } from '../../../netfilter/compile.ts';
import { parseTable } from '../../../netfilter/readback.ts';
import { NftSim, essentials, expectedRules, fullPolicy, twoNetworks } from './fixtures.ts';

const test = suite('readback');
const T = 'director_unit';

test('reads back every policy rule, in force order, with its match, logging and counters', () => {
  const sim = new NftSim();
  const input = twoNetworks(T);
  sim.apply(compileTable(input));
  const view = parseTable(sim.list());
  assert.is(view.table, T);
  const a = view.networks.aaaa1111!;
  const policy = input.networks[0]!.policy!;
  assert.equal(essentials(a.outbound), expectedRules(policy, 'outbound'));
  assert.equal(essentials(a.inbound), expectedRules(policy, 'inbound'));
  assert.is(a.mode, 'enforce');
  assert.is(a.logging, true);
  assert.is(a.bridge, 'dt-aaaa1111');
  assert.is(a.isolated, false);
  assert.ok(a.outbound.every((r) => r.counter !== null && r.logged === (r.action === 'deny') && !r.audit));
  assert.equal(a.counters, { allowed: { packets: 0, bytes: 0 }, denied: { packets: 0, bytes: 0 } });
  const byName = a.outbound.find((r) => r.destination === '*.pythonhosted.org')!;
  assert.is(byName.sets.length, 2);
  assert.equal(
    byName.sets.map((s) => a.sets[s]!.host),
    ['*.pythonhosted.org', '*.pythonhosted.org'],
  );
  assert.equal(view.bridges.sort(), ['dt-aaaa1111', 'dt-bbbb2222']);
  assert.ok(view.alwaysDenied.includes('169.254.0.0/16'));
  assert.ok(view.subnets.includes('fd00:dead:2::/64'));
  const b = view.networks.bbbb2222!;
  assert.is(b.mode, null);
  assert.equal(b.outbound, []);
  assert.equal(
    b.guards.map((g) => `${g.chain}.${g.guard}:${g.verdict}`),
    [
      'out.peer:accept',
      'out.range:drop',
      'out.xnet:drop',
      'out.resolver:accept',
      'out.dns:drop',
      'out.open:accept',
      'in.xnet:drop',
      'in.open:accept',
      'host.established:accept',
      'host.nd:accept',
      'host.resolver:accept',
      'host.host:drop',
    ],
  );
});

test('reads back audit mode, isolation, disabled counters and name-set contents', () => {
  const sim = new NftSim();
  const input = twoNetworks(T, { policy: fullPolicy({ mode: 'audit', metrics: false }) }, { isolated: true });
  sim.apply(compileTable(input));
  sim.apply(addResolvedAddresses(T, input.networks[0]!, { host: 'pypi.org' }, [{ addr: '192.0.2.5', timeoutS: 30 }]));
  const view = parseTable(sim.list());
  const a = view.networks.aaaa1111!;
  assert.is(a.mode, 'audit');
  assert.ok(a.outbound.filter((r) => r.action === 'deny').every((r) => r.audit && r.logged));
  assert.ok(a.outbound.every((r) => r.counter === null));
  const pypi = Object.values(a.sets).filter((s) => s.host === 'pypi.org');
  assert.equal(
    pypi.map((s) => [s.family, s.elements]),
    [
      [4, [{ addr: '192.0.2.5', timeoutS: 30, expiresS: null }]],
      [6, []],
    ],
  );
  assert.is(view.networks.bbbb2222!.isolated, true);
  assert.is(view.networks.bbbb2222!.guards[0]!.guard, 'isolate');
});

test("ignores objects that are not Director's and tolerates an empty listing", () => {
  assert.equal(parseTable({}).networks, {});
  const view = parseTable({
    nftables: [
      { table: { family: 'inet', name: 'x' } },
      { chain: { name: 'something_else' } },
      { rule: { chain: 'something_else', expr: [{ accept: null }] } },
      { set: { name: 'foreign', elem: ['a'] } },
    ],
  });
  assert.equal(view.networks, {});
});

test.run();
