/**
 * Upgrading a data dir whose policies were stored before first-match, with real packets: the
 * runtime is stopped, the store is put back as the earlier code left it (policies without
 * `order`, user_version 3), and a new runtime starts on it. Its sandboxes keep running across.
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { tcpProbe, token } from '../../helpers/net-client.ts';
import { BASE, caller, eventually, sleep, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';
import { MIGRATIONS } from '../../../core/migrations.ts';

const test = suite('policy upgrade');
let first: TestRuntime | undefined;
let rt: TestRuntime | undefined;
let fi: FakeInternet;
const X = '203.0.113.10';
const Y = '203.0.113.20';

test.before(async () => {
  fi = await startFakeInternet();
});
test.after(async () => {
  await (rt ?? first)?.cleanup();
  await fi?.close();
});

const arrived = (t: string) => fi.received((o) => o.kind === 'tcp' && o.data.includes(t)).length > 0;

async function reaches(r: TestRuntime, id: string, host: string, port: number): Promise<boolean> {
  await fi.assertRoute(host);
  const t = token();
  const res = await tcpProbe(r, id, host, port, t, 1.5);
  await sleep(100);
  assert.is(res.ok, arrived(t), JSON.stringify(res));
  return arrived(t);
}

test('a stored policy is recompiled in order as written, or kept as enforced and flagged when some rules could never match', async () => {
  first = testRuntime({ networking: 'on' });
  await first.start();
  const nets = first.networks!.manager;
  const a = await nets.create(caller, { name: 'issue', enableDNS: false });
  const b = await nets.create(caller, { name: 'shadowed', enableDNS: false });
  const spec = { image: BASE, securityPolicy: { allowNetwork: true } };
  const sa = await first.sandboxes.create({ ...spec, networkMode: a.id }, caller);
  const sb = await first.sandboxes.create({ ...spec, networkMode: b.id }, caller);
  await first.close();

  // The store as the earlier code left it: these policies, with no order, before the migration that marks them.
  const sql = new DatabaseSync(path.join(first.dataDir, 'director.db'));
  const set = sql.prepare('UPDATE networks SET policy = ? WHERE id = ?');
  const old = (outbound: unknown[]) =>
    JSON.stringify({ name: 'old', inbound: [], outbound, logging: true, metrics: true, mode: 'enforce' });
  set.run(
    old([
      { action: 'allow', protocol: 'tcp', destination: `${X}/32`, port: 8080 },
      { action: 'deny', protocol: 'all' },
    ]),
    a.id,
  );
  set.run(
    old([
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
      { action: 'deny', protocol: 'tcp', destination: `${Y}/32` },
    ]),
    b.id,
  );
  // What the upgrade does to such a store: the migration that marks them, then the boot's decision.
  const marking = MIGRATIONS.find((m) => m.name.startsWith('network policies stored before first-match'))!;
  sql.exec(marking.sql);
  sql.close();

  rt = testRuntime({ networking: 'on', dataDir: first.dataDir, runtimeName: first.config.runtimeName });
  await rt.start();
  const m = rt.networks!.manager;

  // The policy, recompiled as written: X:8080 now gets out (under deny-first nothing did).
  assert.is(m.get(caller, a.id).policy?.order, 'first-match');
  assert.is(await reaches(rt, sa.id, X, 8080), true);
  assert.is(await reaches(rt, sa.id, X, 80), false);
  const upgraded = rt.events.list({ networkId: a.id, type: 'policy_upgraded', limit: 5 })[0];
  assert.equal(upgraded?.details.reordered, [{ allow: 'outbound[0]', deny: 'outbound[1]' }]);

  // The shadowed one, refused: enforced as before (its deny first), flagged, reported.
  const kept = m.get(caller, b.id).policy!;
  assert.equal([kept.order, kept.review?.shadowed], ['deny-first', [{ rule: 'outbound[1]', by: 'outbound[0]' }]]);
  assert.is(await reaches(rt, sb.id, Y, 8080), false, 'the deny the operator relied on is still in force');
  assert.is(await reaches(rt, sb.id, X, 8080), true);
  assert.equal(
    (await m.inForce(caller, b.id))!.outbound.map((r) => r.index),
    [1, 0],
    'the kernel holds it deny-first',
  );
  const verdict = await m.testPolicy(caller, b.id, { direction: 'outbound', protocol: 'tcp', address: Y, port: 8080 });
  assert.equal([verdict.verdict, verdict.decidedBy.rule], ['deny', 'outbound[1]']);
  const review = await eventually(() => rt!.events.list({ networkId: b.id, type: 'policy_review_required', limit: 5 })[0]);
  assert.is(review.severity, 'high');
  try {
    await m.allowAccess(caller, b.id, { destinations: [{ host: '198.51.100.7' }] });
    assert.unreachable('allow-access on a policy kept for review');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'CONFLICT');
  }
  // A new policy replaces it, in order as written.
  await m.applyPolicy(caller, b.id, {
    name: 'fixed',
    outbound: [
      { action: 'deny', protocol: 'tcp', destination: `${Y}/32` },
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
    ],
  });
  const fixed = m.get(caller, b.id).policy!;
  assert.equal([fixed.order, fixed.review], ['first-match', undefined]);
  assert.is(await reaches(rt, sb.id, Y, 8080), false);
  assert.is(await reaches(rt, sb.id, X, 8080), true);
});

test.run();
