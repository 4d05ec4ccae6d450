import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEventSink, type EventInput, type SecurityEvent } from '../../../runtime/events.ts';
import { openDb } from '../../../core/db.ts';
import { storing } from '../../helpers/sink.ts';

function fresh(startMs = 1_700_000_000_000) {
  const clock = {
    now: startMs,
    nowMs(): number {
      return this.now;
    },
  };
  const db = openDb('/tmp/x', ':memory:');
  return { clock, db, sink: storing(createEventSink(db, clock)) };
}

const ev = (over: Partial<EventInput> = {}): EventInput => ({ type: 'policy_violation', severity: 'high', ...over });

test('emit persists the event with increasing seq, the clock time and null for absent fields', () => {
  const { sink, clock } = fresh();
  const a = sink.emit(ev({ sandboxId: 'sbx_1', details: { field: 'Privileged' } }));
  clock.now += 5;
  const b = sink.emit(ev({ type: 'exec_denied', severity: 'medium' }));
  assert.ok(b.seq > a.seq);
  assert.match(a.id, /^evt_/);
  assert.is.not(a.id, b.id);
  assert.is(a.timestamp, new Date(1_700_000_000_000).toISOString());
  assert.is(b.timestamp, new Date(1_700_000_000_005).toISOString());
  assert.is(b.workspace, null);
  assert.is(b.sandboxId, null);
  assert.equal(b.details, {});
  assert.equal(sink.list({ limit: 10 }), [a, b]);
});

test('seq keeps increasing across many emits', () => {
  const { sink } = fresh();
  const seqs = Array.from({ length: 50 }, () => sink.emit(ev()).seq);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!);
});

test('subscribers receive every emitted event until they unsubscribe', () => {
  const { sink } = fresh();
  const got: SecurityEvent[] = [];
  const off = sink.subscribe((e) => got.push(e));
  const a = sink.emit(ev());
  off();
  sink.emit(ev());
  assert.equal(got, [a]);
});

test('a throwing subscriber breaks neither emit nor the other subscribers', () => {
  const { sink } = fresh();
  const got: number[] = [];
  sink.subscribe(() => {
    throw new Error('subscriber failed');
  });
  sink.subscribe((e) => got.push(e.seq));
  const e = sink.emit(ev());
  assert.equal(got, [e.seq]);
  assert.is(sink.list({ limit: 10 }).length, 1);
});

test('the onEmit hook sees every event', () => {
  const db = openDb('/tmp/x', ':memory:');
  const seen: string[] = [];
  const sink = storing(createEventSink(db, { nowMs: () => 0 }, (e) => seen.push(e.id)));
  const e = sink.emit(ev());
  assert.equal(seen, [e.id]);
});

test('list filters by type, severity, sandbox, workspace and network', () => {
  const { sink } = fresh();
  const a = sink.emit(ev({ type: 'oom_kill', severity: 'medium', sandboxId: 'sbx_a', workspace: 'w1' }));
  const b = sink.emit(ev({ type: 'policy_violation', severity: 'high', sandboxId: 'sbx_b', workspace: 'w2', networkId: 'net_1' }));
  const c = sink.emit(ev({ type: 'oom_kill', severity: 'high', sandboxId: 'sbx_b', workspace: 'w1' }));
  const seqs = (q: Parameters<typeof sink.list>[0]) => sink.list(q).map((e) => e.seq);
  assert.equal(seqs({ type: 'oom_kill', limit: 10 }), [a.seq, c.seq]);
  assert.equal(seqs({ severity: 'high', limit: 10 }), [b.seq, c.seq]);
  assert.equal(seqs({ sandboxId: 'sbx_b', limit: 10 }), [b.seq, c.seq]);
  assert.equal(seqs({ workspace: 'w1', limit: 10 }), [a.seq, c.seq]);
  assert.equal(seqs({ networkId: 'net_1', limit: 10 }), [b.seq]);
  assert.equal(seqs({ type: 'oom_kill', severity: 'high', sandboxId: 'sbx_b', limit: 10 }), [c.seq]);
  assert.equal(seqs({ type: 'nothing', limit: 10 }), []);
});

test('list time window includes sinceMs and excludes untilMs', () => {
  const { sink, clock } = fresh(1000);
  const at = (ms: number) => {
    clock.now = ms;
    return sink.emit(ev()).seq;
  };
  const s1 = at(1000);
  const s2 = at(2000);
  const s3 = at(3000);
  const seqs = (q: Parameters<typeof sink.list>[0]) => sink.list(q).map((e) => e.seq);
  assert.equal(seqs({ sinceMs: 2000, limit: 10 }), [s2, s3]);
  assert.equal(seqs({ untilMs: 2000, limit: 10 }), [s1]);
  assert.equal(seqs({ sinceMs: 1000, untilMs: 3000, limit: 10 }), [s1, s2]);
  assert.equal(seqs({ sinceMs: 4000, limit: 10 }), []);
});

test('list resumes strictly after a seq, in seq order, and respects the limit', () => {
  const { sink } = fresh();
  const all = Array.from({ length: 6 }, () => sink.emit(ev()).seq);
  const seqs = (q: Parameters<typeof sink.list>[0]) => sink.list(q).map((e) => e.seq);
  assert.equal(seqs({ afterSeq: all[2]!, limit: 10 }), all.slice(3));
  assert.equal(seqs({ limit: 2 }), all.slice(0, 2));
  assert.equal(seqs({ afterSeq: all[1]!, limit: 2 }), all.slice(2, 4));
  assert.equal(seqs({ afterSeq: all[5]!, limit: 10 }), []);
});

test('listed events carry their details back from the store', () => {
  const { sink } = fresh();
  sink.emit(ev({ actor: 'key_1', sessionId: 'ses_1', details: { field: 'HostConfig', nested: { n: 1 } } }));
  const [e] = sink.list({ limit: 1 });
  assert.equal(e?.details, { field: 'HostConfig', nested: { n: 1 } });
  assert.is(e?.actor, 'key_1');
  assert.is(e?.sessionId, 'ses_1');
});

test('events emitted in one synchronous run are stored together right after it, and published only then', async () => {
  const db = openDb('/tmp/x', ':memory:');
  const sink = createEventSink(db, { nowMs: () => 0 });
  const published: number[] = [];
  sink.subscribe((e) => published.push(e.seq));
  const a = sink.emit(ev());
  const b = sink.emit(ev());
  assert.is(a.seq, -1, "not stored during the producer's run");
  assert.equal(published, []);
  assert.is(sink.health().pending, 2);
  await Promise.resolve();
  assert.ok(a.seq > 0 && b.seq === a.seq + 1, 'stored at the microtask, in emit order');
  assert.equal(published, [a.seq, b.seq]);
  assert.is(sink.health().pending, 0);
});

test('list sees every event emitted before it, even in the same synchronous run', () => {
  const db = openDb('/tmp/x', ':memory:');
  const sink = createEventSink(db, { nowMs: () => 0 });
  const a = sink.emit(ev());
  assert.equal(
    sink.list({ limit: 10 }).map((e) => e.id),
    [a.id],
  );
  assert.ok(a.seq > 0);
});

test('a burst of groupSize events is stored without waiting for the microtask', () => {
  const db = openDb('/tmp/x', ':memory:');
  const sink = createEventSink(db, { nowMs: () => 0 }, undefined, { groupSize: 3 });
  const es = [sink.emit(ev()), sink.emit(ev()), sink.emit(ev()), sink.emit(ev())];
  assert.equal(
    es.map((e) => e.seq > 0),
    [true, true, true, false],
  );
  assert.is(sink.health().pending, 1);
});

test('an emit inside another transaction is stored after that transaction, not inside it', async () => {
  const db = openDb('/tmp/x', ':memory:');
  const sink = createEventSink(db, { nowMs: () => 0 });
  let e: SecurityEvent | undefined;
  assert.throws(() =>
    db.tx(() => {
      e = sink.emit(ev());
      sink.flush();
      throw new Error('rolled back');
    }),
  );
  await Promise.resolve();
  assert.ok(e!.seq > 0);
  assert.equal(
    sink.list({ limit: 10 }).map((x) => x.id),
    [e!.id],
    'the rollback did not take the event with it',
  );
});

test.run();
