/**
 * The runtime's Firewall against the real nft: policy changes pile up as generations until they
 * are retired, never more than MAX_RETIRED behind, and removal takes every generation with it.
 * Works on a throwaway `director_test_*` table; no bridge or container is needed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { compileDeleteTable } from '../../../netfilter/compile.ts';
import { DEFAULT_ALWAYS_DENIED } from '../../../netfilter/model.ts';
import { shortName } from '../../../netfilter/names.ts';
import { applyDocument, listTable, runNft } from '../../../netfilter/nft.ts';
import { syntheticPolicy } from '../../../policies/synthetic.ts';
import { systemClock } from '../../../core/clock.ts';
import { createEventSink } from '../../../runtime/events.ts';
import { Firewall, MAX_RETIRED } from '../../../runtime/network/firewall.ts';
import { openDb } from '../../../core/db.ts';
import { NetworkStore, type NetworkRecord } from '../../../runtime/store/networks.ts';
import { nftUnavailable, testTableName } from './helpers.ts';
import { eventually } from '../../helpers/runtime.ts';

const test = suite('netfilter firewall');
const skip = nftUnavailable();
const it = (name: string, fn: () => Promise<void> | void) => (skip ? test.skip(name, fn) : test(name, fn));

const T = testTableName();
const db = openDb('', ':memory:');
const store = new NetworkStore(db);
// Retiring only when asked (or forced), so the test sees what piles up.
const fw = new Firewall({
  table: T,
  alwaysDenied: DEFAULT_ALWAYS_DENIED,
  dnsPort: 53,
  store,
  events: createEventSink(db, systemClock),
  clock: systemClock,
  logger: pino({ level: 'silent' }),
  checkIntervalMs: 3_600_000,
  retireDelayMs: 3_600_000,
});
const id = 'net_fwtest0000000001';
const rec: NetworkRecord = {
  id,
  workspace: 'wsp_t',
  name: 'fw',
  short: shortName(id),
  bridge: `dt-${shortName(id)}`,
  subnet: '10.251.7.0/24',
  gateway: '10.251.7.1',
  enableDns: false,
  internal: false,
  isolated: false,
  privateFor: null,
  engineId: null,
  policy: null,
  labels: {},
  status: 'ready',
  createdMs: 0,
  updatedMs: 0,
  deletedMs: null,
};

test.after(async () => {
  fw.close();
  if (!skip) await applyDocument(compileDeleteTable(T));
  db.close();
});

const generations = async () => (await fw.view(rec))?.generations ?? [];

it('replaced generations wait for retiring, are retired before more than MAX_RETIRED pile up, and settle() leaves one', async () => {
  store.insert(rec);
  await fw.boot();
  assert.equal(await generations(), [0]);
  const changes = MAX_RETIRED + 3;
  let most = 0;
  for (let i = 1; i <= changes; i++) {
    const policy = syntheticPolicy(5 + (i % 2));
    store.update(id, i, { policy });
    await fw.sync({ ...rec, policy });
    const gens = await generations();
    assert.is(Math.max(...gens), i, 'the new generation is the one in force');
    assert.is((await fw.view(rec))!.generation, i);
    most = Math.max(most, gens.length);
  }
  assert.is(most, MAX_RETIRED + 1, 'the in-force generation plus at most MAX_RETIRED replaced ones');
  await fw.settle();
  assert.equal(await generations(), [changes]);
  assert.equal(await fw.verify(), []);
});

it('removing a network with unretired generations leaves nothing of it', async () => {
  await fw.sync({ ...rec, policy: syntheticPolicy(3) });
  await fw.sync({ ...rec, isolated: true, policy: syntheticPolicy(3) });
  assert.ok((await generations()).length >= 3);
  await fw.remove(rec);
  assert.not.match(JSON.stringify(await listTable(T)), rec.short);
});

it('retiring waits until changes pause: each change restarts the delay', async () => {
  const T3 = testTableName();
  const fw3 = new Firewall({
    table: T3,
    alwaysDenied: DEFAULT_ALWAYS_DENIED,
    dnsPort: 53,
    store,
    events: createEventSink(db, systemClock),
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    checkIntervalMs: 3_600_000,
    retireDelayMs: 600,
  });
  const gens = async () => (await fw3.view(rec))?.generations ?? [];
  try {
    store.update(id, 200, { policy: syntheticPolicy(2) });
    await fw3.boot();
    await fw3.sync({ ...rec, policy: syntheticPolicy(3) });
    await new Promise((r) => setTimeout(r, 400));
    await fw3.sync({ ...rec, policy: syntheticPolicy(4) });
    await new Promise((r) => setTimeout(r, 300));
    // 700 ms after the first change, 300 ms after the second: nothing retired yet.
    assert.equal(await gens(), [0, 1, 2]);
    await eventually(async () => JSON.stringify(await gens()) === '[2]', 5000, 50);
  } finally {
    fw3.close();
    await applyDocument(compileDeleteTable(T3));
  }
});

it('a retire that fails is logged, keeps what it had to delete, and a rebuild starts clean', async () => {
  const T2 = testTableName();
  const logged: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(line) });
  const fw2 = new Firewall({
    table: T2,
    alwaysDenied: DEFAULT_ALWAYS_DENIED,
    dnsPort: 53,
    store,
    events: createEventSink(db, systemClock),
    clock: systemClock,
    logger,
    checkIntervalMs: 3_600_000,
    retireDelayMs: 20,
  });
  try {
    store.update(id, 100, { policy: syntheticPolicy(2) });
    await fw2.boot();
    await fw2.sync({ ...rec, policy: syntheticPolicy(4) });
    // The table goes before the scheduled retire runs: its transaction fails.
    await runNft(['delete', 'table', 'inet', T2]);
    for (let i = 0; i < 50 && !logged.some((l) => l.includes('could not retire')); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      logged.some((l) => l.includes('could not retire replaced nft chains')),
      `not logged: ${logged.join('')}`,
    );
    // Still owed, so asking again fails again rather than pretending it is done.
    try {
      await fw2.settle();
      assert.unreachable('settle() succeeded on a missing table');
    } catch (err) {
      assert.instance(err, Error);
      assert.not.instance(err, assert.Assertion);
    }
    await fw2.boot();
    await fw2.settle();
    assert.equal((await fw2.view(rec))?.generations, [0]);
  } finally {
    fw2.close();
    await applyDocument(compileDeleteTable(T2));
  }
});

test.run();
