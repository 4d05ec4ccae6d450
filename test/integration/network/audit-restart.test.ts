/** Audit (shadow) mode, the proposal built from it, and a restart rebuilding the same ruleset. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readTable } from '../../../netfilter/apply.ts';
import { proposePolicy } from '../../../runtime/network/propose.ts';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { tcpProbe, token } from '../../helpers/net-client.ts';
import { BASE, caller, eventually, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('audit-restart');
let rt: TestRuntime;
let fi: FakeInternet;
const WEB = '203.0.113.10';

test.before(async () => {
  fi = await startFakeInternet();
  rt = testRuntime({ networking: 'on' });
  await rt.start();
});
test.after(async () => {
  await rt?.cleanup();
  await fi?.close();
});

const nets = () => rt.networks!.manager;

test('audit mode drops nothing, records what it would have dropped, and proposes the minimal allow policy', async () => {
  const n = await nets().create(caller, { name: 'shadow', enableDNS: false });
  await nets().applyPolicy(caller, n.id, {
    name: 'shadow',
    mode: 'audit',
    outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32`, port: 80 }],
  });
  const sb = await rt.sandboxes.create({ image: BASE, securityPolicy: { allowNetwork: true }, networkMode: n.id }, caller);
  await fi.assertRoute(WEB);
  const t = token();
  const r = await tcpProbe(rt, sb.id, WEB, 8080, t, 2);
  assert.is(r.ok, true, 'audit mode must not drop');
  const ev = await eventually(() => rt.events.list({ networkId: n.id, type: 'egress_audit', limit: 10 })[0], 5000);
  assert.is(ev.details.port, 8080);
  assert.is(ev.details.wouldDrop, true);
  assert.is(ev.sandboxId, sb.id);
  // Metadata is still dropped in audit mode.
  assert.is((await tcpProbe(rt, sb.id, '169.254.169.254', 80, token(), 1)).ok, false);
  const obs = rt.networks!.store.observations(n.id);
  assert.ok(
    obs.some((o) => o.remote === WEB && o.port === 8080 && o.proto === 'tcp'),
    JSON.stringify(obs),
  );
  const rec = nets().get(caller, n.id);
  const proposal = proposePolicy(
    rec.policy,
    obs.map((o) => ({ direction: o.direction, proto: o.proto as 'tcp', remote: o.remote, port: o.port, count: o.count })),
  );
  assert.ok(proposal.added.some((a) => a.destination === `${WEB}/32` && a.port === 8080));
  assert.match(proposal.diff, /\+ allow tcp/);
  // Applying the proposal in enforce mode keeps what was observed working.
  await nets().applyPolicy(caller, n.id, { ...proposal.policy, mode: 'enforce' });
  assert.is((await tcpProbe(rt, sb.id, WEB, 8080, token(), 2)).ok, true);
  assert.is((await tcpProbe(rt, sb.id, WEB, 5000, token(), 1)).ok, false);
});

test('a restart rebuilds the identical ruleset', async () => {
  const n = await nets().create(caller, { name: 'persist', enableDNS: true });
  await nets().applyPolicy(caller, n.id, {
    name: 'mixed',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24', port: { from: 8000, to: 8100 } },
      { action: 'deny', protocol: 'tcp', destination: '203.0.113.20/32' },
      { action: 'allow', protocol: 'udp', destination: 'api.example.test', port: 53000 },
    ],
    inbound: [{ action: 'allow', protocol: 'tcp', source: '10.0.0.0/8', port: 22 }],
  });
  await nets().isolate(caller, (await nets().create(caller, { name: 'iso', enableDNS: false })).id);
  // Counters and timers run on; generation numbers restart at 0 when the table is rebuilt.
  const skip = new Set(['counter', 'counters', 'expiresS', 'generation', 'generations']);
  const normalize = (v: Awaited<ReturnType<typeof readTable>>) => JSON.stringify(v, (k, val: unknown) => (skip.has(k) ? undefined : val));
  const before = normalize(await readTable(rt.config.nftTable));
  await rt.close();
  // A fresh runtime on the same store and table, as after a crash or an upgrade.
  const { createRuntime } = await import('../../../runtime/runtime.ts');
  const again = createRuntime({ config: rt.config, logger: rt.logger });
  try {
    await again.start();
    const after = normalize(await readTable(rt.config.nftTable));
    assert.is(after, before);
    assert.equal(await again.networks!.firewall.verify(), []);
  } finally {
    await again.close();
  }
});

test.run();
