/** The event sink never loses an event silently: a refusing store buffers, retries in order, and counts what it drops. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Registry } from 'prom-client';
import { createEventSink, type SecurityEvent } from '../../../runtime/events.ts';
import { registerSinkMetrics } from '../../../runtime/security/service.ts';
import { openDb } from '../../../core/db.ts';

const test = suite('event sink retry buffer');

function fresh(retryBufferSize = 100) {
  const db = openDb('/tmp/x', ':memory:');
  const sink = createEventSink(db, { nowMs: () => 1_700_000_000_000 }, undefined, { retryBufferSize, retryDelayMs: 60_000 });
  // query_only makes every write fail with SQLITE_READONLY, as a full or locked store would.
  const refuse = (on: boolean) => db.sql.exec(`PRAGMA query_only = ${on ? 1 : 0}`);
  return { db, sink, refuse };
}

test('a refused insert is buffered and reported to the producer, not thrown', () => {
  const { sink, refuse } = fresh();
  refuse(true);
  const e = sink.emit({ type: 'policy_violation', severity: 'high' });
  assert.is(sink.flush(), 1, 'the store refused it: it waits');
  assert.is(e.delivery, 'buffered');
  assert.is(
    sink.emit({ type: 'policy_violation', severity: 'high' }).delivery,
    'buffered',
    'reported at once while the store is known to refuse',
  );
  assert.is(e.seq, -1);
  assert.is(sink.health().pending, 2);
});

test('buffered events are stored in emit order once the store accepts writes, and only then published', () => {
  const { sink, refuse } = fresh();
  const published: SecurityEvent[] = [];
  sink.subscribe((e) => published.push(e));
  refuse(true);
  const a = sink.emit({ type: 'a', severity: 'info' });
  const b = sink.emit({ type: 'b', severity: 'info' });
  sink.flush();
  assert.is(published.length, 0);
  refuse(false);
  const c = sink.emit({ type: 'c', severity: 'info' });
  sink.flush();
  assert.is(c.delivery, undefined);
  const stored = sink.list({ limit: 10 });
  assert.equal(
    stored.map((e) => e.id),
    [a.id, b.id, c.id],
  );
  assert.ok(stored[0]!.seq < stored[1]!.seq && stored[1]!.seq < stored[2]!.seq);
  assert.equal(
    published.map((e) => e.type),
    ['a', 'b', 'c'],
  );
  assert.ok(published.every((e) => e.seq > 0 && e.delivery === undefined));
  assert.is(sink.health().pending, 0);
});

test('flush() retries on demand', () => {
  const { sink, refuse } = fresh();
  refuse(true);
  sink.emit({ type: 'a', severity: 'info' });
  assert.is(sink.flush(), 1);
  refuse(false);
  assert.is(sink.flush(), 0);
  assert.is(sink.list({ limit: 10 }).length, 1);
});

test('a full buffer drops its oldest event and counts it as buffer_full, exported as a metric', async () => {
  const { sink, refuse } = fresh(2);
  refuse(true);
  sink.emit({ type: 'a', severity: 'info' });
  sink.emit({ type: 'b', severity: 'info' });
  sink.flush();
  sink.emit({ type: 'c', severity: 'info' });
  assert.equal(sink.health(), { pending: 2, dropped: { buffer_full: 1, unstorable: 0, store_closed: 0 } });
  const registry = new Registry();
  registerSinkMetrics(registry, sink);
  registerSinkMetrics(registry, sink);
  const text = await registry.metrics();
  assert.match(text, 'director_events_dropped_total{reason="buffer_full"} 1');
  assert.match(text, 'director_events_pending 2');
  refuse(false);
  sink.flush();
  assert.equal(
    sink.list({ limit: 10 }).map((e) => e.type),
    ['b', 'c'],
  );
});

test('an event whose details cannot be stored is dropped and counted, never thrown', () => {
  const { sink } = fresh();
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  const e = sink.emit({ type: 'x', severity: 'info', details: loop });
  assert.is(e.delivery, 'dropped');
  assert.is(sink.health().dropped.unstorable, 1);
});

test('an event the store rejects by itself is dropped alone and counted once; the rest of its group is stored and published', async () => {
  const { sink, db } = fresh();
  db.sql.exec("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.type = 'poison' BEGIN SELECT RAISE(ABORT, 'rejected'); END");
  const published: string[] = [];
  sink.subscribe((e) => published.push(e.type));
  const events = ['a', 'poison', 'b'].map((type) => sink.emit({ type, severity: 'info' }));
  await Promise.resolve();
  assert.equal(published, ['a', 'b']);
  assert.equal(
    events.map((e) => e.delivery),
    [undefined, 'dropped', undefined],
  );
  assert.ok(events[0]!.seq > 0 && events[2]!.seq > events[0]!.seq);
  assert.equal(sink.health(), { pending: 0, dropped: { buffer_full: 0, unstorable: 1, store_closed: 0 } });
  sink.flush();
  assert.is(sink.health().dropped.unstorable, 1, 'counted again on a later flush');
});

test('emits after the store closed are counted as store_closed', () => {
  const { sink, db } = fresh();
  db.close();
  assert.is(sink.emit({ type: 'x', severity: 'info' }).delivery, 'dropped');
  assert.is(sink.health().dropped.store_closed, 1);
});

test.run();
