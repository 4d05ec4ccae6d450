/** The Monitoring API's service, without HTTP: sampling timers and the workspace stats, on the runtime's clock. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { createEventSink } from '../../../runtime/events.ts';
import type { Health } from '../../../runtime/health.ts';
import { Sampler } from '../../../runtime/monitoring/sampler.ts';
import { Monitoring } from '../../../runtime/monitoring/service.ts';
import type { SandboxManager } from '../../../runtime/sandbox/manager.ts';
import { EventStream } from '../../../runtime/security/stream.ts';
import type { SandboxRecord } from '../../../runtime/store/sandboxes.ts';
import { notFound } from '../../../core/errors.ts';
import { storing } from '../../helpers/sink.ts';

const DAY_MS = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sandboxes as the monitoring service reads them: `running` ones of workspace `w1`, with fixed stats. */
function fakeSandboxes(ids: string[]) {
  const asked: string[] = [];
  const rec = (id: string) =>
    ({ id, workspace: 'w1', status: 'running', spec: { resourceLimits: { cpu: 0.5, memory: 128, pids: 64 } } }) as unknown as SandboxRecord;
  const sandboxes: Pick<SandboxManager, 'list' | 'get' | 'metrics'> = {
    list: (caller, f) => {
      const items = caller.workspace === 'w1' && (f.status === undefined || f.status === 'running') ? ids.map(rec) : [];
      return { items, total: items.length };
    },
    get: (caller, id) => {
      if (caller.workspace !== 'w1' || !ids.includes(id)) throw notFound('sandbox', id);
      return rec(id);
    },
    metrics: (_caller, id) => {
      asked.push(id);
      if (!ids.includes(id)) return Promise.reject(notFound('sandbox', id));
      return Promise.resolve({
        sandboxId: id,
        timestamp: '2026-01-01T00:00:00.000Z',
        cpu: { percent: 10, limitCores: 0.5 },
        memory: { usageBytes: 1000, limitBytes: 2000 },
        pids: { current: 3, limit: 64 },
        network: { rxBytes: 1, txBytes: 2 },
        uptimeMs: 5,
      });
    },
  };
  return { sandboxes, asked };
}

function setup(ids = ['sbx_a', 'sbx_b']) {
  const clock = {
    now: 10 * DAY_MS,
    nowMs() {
      return this.now;
    },
  };
  const db = openDb('/tmp/x', ':memory:');
  const events = storing(createEventSink(db, clock));
  const { sandboxes, asked } = fakeSandboxes(ids);
  const sampler = new Sampler(sandboxes);
  const health = { readiness: () => Promise.resolve({ ready: true, checks: [] }), firewallStatus: () => null } as unknown as Health;
  const monitoring = new Monitoring({
    sandboxes,
    networks: null,
    stream: new EventStream(db, clock),
    health,
    supervisor: { engineUp: true },
    sampler,
  });
  return { clock, db, events, sampler, monitoring, asked };
}

test("the last day's events are counted by the runtime's clock, not the wall clock", () => {
  const { clock, events, monitoring } = setup();
  clock.now = 10 * DAY_MS - DAY_MS - 1;
  events.emit({ type: 'old', severity: 'high', workspace: 'w1' });
  clock.now = 10 * DAY_MS - 1000;
  events.emit({ type: 'recent', severity: 'high', workspace: 'w1' });
  events.emit({ type: 'recent', severity: 'low', workspace: 'w1' });
  events.emit({ type: 'elsewhere', severity: 'low', workspace: 'w2' });
  clock.now = 10 * DAY_MS;
  assert.equal(monitoring.stats({ workspace: 'w1' }).events, { last24h: { high: 1, low: 1 } });
  // A day later by the injected clock, nothing is recent any more.
  clock.now = 12 * DAY_MS;
  assert.equal(monitoring.stats({ workspace: 'w1' }).events, { last24h: {} });
});

test('stats count sandboxes by state and sum what running ones were given', () => {
  const { monitoring } = setup();
  const s = monitoring.stats({ workspace: 'w1' });
  assert.is(s.sandboxes.byState.running, 2);
  assert.is(s.sandboxes.total, 2);
  assert.equal(s.resources.allocated, { cpuCores: 1, memoryMb: 256, pids: 128 });
  assert.is(s.resources.sampled, null);
  assert.is(s.networks, null);
  assert.equal(s.monitoring, { active: false });
});

test('sampling starts at once and repeats, the samples show in stats, and stopping clears them', async () => {
  const { monitoring, asked } = setup();
  const status = monitoring.startSampling({ workspace: 'w1' }, null, 20);
  assert.equal(status, { active: true, intervalMs: 20, sandboxIds: null });
  await sleep(70);
  assert.ok(asked.filter((id) => id === 'sbx_a').length >= 2, `sampled ${asked.length} times`);
  const s = monitoring.stats({ workspace: 'w1' });
  assert.equal(s.resources.sampled, { sandboxes: 2, cpuPercent: 20, memoryBytes: 2000, pids: 6 });
  assert.equal(monitoring.stopSampling({ workspace: 'w1' }), { stopped: true, active: false });
  const n = asked.length;
  await sleep(50);
  assert.is(asked.length, n, 'no sampling after stop');
  assert.is(monitoring.stats({ workspace: 'w1' }).resources.sampled, null);
  assert.equal(monitoring.stopSampling({ workspace: 'w1' }), { stopped: false, active: false });
});

test("sampling named sandboxes checks each is the caller's; close stops every workspace's timer", async () => {
  const { monitoring, asked } = setup();
  assert.throws(() => monitoring.startSampling({ workspace: 'w1' }, ['sbx_zzz'], 20), /sbx_zzz/);
  assert.equal(monitoring.stats({ workspace: 'w1' }).monitoring, { active: false });
  monitoring.startSampling({ workspace: 'w1' }, ['sbx_b'], 20);
  await sleep(30);
  assert.ok(asked.every((id) => id === 'sbx_b'));
  monitoring.close();
  const n = asked.length;
  await sleep(50);
  assert.is(asked.length, n);
  assert.equal(monitoring.stats({ workspace: 'w1' }).monitoring, { active: false });
});

test('health combines readiness with the firewall and supervisor state', async () => {
  const { monitoring } = setup();
  assert.equal(await monitoring.health(), { status: 'healthy', checks: [], firewall: null, supervisor: { engineUp: true } });
});

test.run();
