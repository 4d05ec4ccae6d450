import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEventSink, type EventInput, type SecurityEvent } from '../../../runtime/events.ts';
import { storing } from '../../helpers/sink.ts';
import { purgeExpiredEvents, startRetentionJob } from '../../../runtime/security/retention.ts';
import {
  exportEvents,
  pageEvents,
  parseCursor,
  parseWindow,
  severitiesOf,
  summarize,
  type StreamScope,
} from '../../../runtime/security/stream.ts';
import { openDb } from '../../../core/db.ts';
import { directorErrorOf } from '../runtime/support.ts';

const test = suite('security event stream');
const T0 = 1_700_000_000_000;

function fresh() {
  const clock = {
    now: T0,
    nowMs(): number {
      return this.now;
    },
  };
  const db = openDb('/tmp/x', ':memory:');
  const sink = storing(createEventSink(db, clock));
  return { clock, db, sink };
}
const ev = (over: Partial<EventInput> = {}): EventInput => ({ type: 'exec_denied', severity: 'medium', workspace: 'w1', ...over });
const W1: StreamScope = { workspace: 'w1', includeGlobal: false };

test('paging with after while other events are inserted between pages returns every event exactly once', () => {
  const { db, sink } = fresh();
  const written: SecurityEvent[] = [];
  for (let i = 0; i < 7; i++) written.push(sink.emit(ev({ details: { i } })));
  const seen: number[] = [];
  let cursor: number | undefined;
  for (let round = 0; round < 100; round++) {
    const page = pageEvents(db, W1, {}, cursor, 3);
    seen.push(...page.items.map((e) => e.seq));
    // Concurrent writers: matching and non-matching events land between the reader's pages.
    if (round < 5) {
      for (let k = 0; k < 4; k++) written.push(sink.emit(ev({ details: { round, k } })));
      sink.emit(ev({ workspace: 'w2' }));
    }
    cursor = parseCursor(page.nextCursor ?? undefined);
    if (!page.hasMore && round >= 5) break;
  }
  assert.equal(
    seen,
    written.map((e) => e.seq),
    'the union of the pages is every event, in order',
  );
  assert.is(new Set(seen).size, seen.length, 'no duplicates');
});

test('an empty page keeps the cursor, so a tailing reader resumes where it was', () => {
  const { db, sink } = fresh();
  const a = sink.emit(ev());
  const p1 = pageEvents(db, W1, {}, undefined, 10);
  assert.is(p1.nextCursor, String(a.seq));
  const p2 = pageEvents(db, W1, {}, a.seq, 10);
  assert.equal(p2, { items: [], nextCursor: String(a.seq), hasMore: false });
  assert.is(pageEvents(db, { workspace: 'nobody', includeGlobal: false }, {}, undefined, 10).nextCursor, null);
});

test('filters: sandbox, network, types, severity, minSeverity and time window', () => {
  const { db, sink, clock } = fresh();
  const a = sink.emit(ev({ sandboxId: 'sbx_a', severity: 'low' }));
  clock.now += 1000;
  const b = sink.emit(ev({ type: 'egress_denied', networkId: 'net_1', sandboxId: 'sbx_b', severity: 'high' }));
  clock.now += 1000;
  const c = sink.emit(ev({ type: 'oom_killed', sandboxId: 'sbx_a', severity: 'critical' }));
  const seqs = (f: Parameters<typeof pageEvents>[2]) => pageEvents(db, W1, f, undefined, 100).items.map((e) => e.seq);
  assert.equal(seqs({ sandboxId: 'sbx_a' }), [a.seq, c.seq]);
  assert.equal(seqs({ networkId: 'net_1' }), [b.seq]);
  assert.equal(seqs({ types: ['oom_killed', 'egress_denied'] }), [b.seq, c.seq]);
  assert.equal(seqs({ severities: severitiesOf('high') }), [b.seq]);
  assert.equal(seqs({ severities: severitiesOf(undefined, 'high') }), [b.seq, c.seq]);
  assert.equal(seqs({ severities: severitiesOf('low', 'high') }), []);
  assert.equal(seqs({ sinceMs: T0 + 1000, untilMs: T0 + 2000 }), [b.seq]);
  assert.equal(seqs({ types: [] }), []);
});

test('events without a workspace are visible only with includeGlobal; other workspaces never', () => {
  const { db, sink } = fresh();
  const mine = sink.emit(ev());
  const host = sink.emit(ev({ type: 'policy_tampered', workspace: null, severity: 'critical' }));
  sink.emit(ev({ workspace: 'w2' }));
  assert.equal(
    pageEvents(db, W1, {}, undefined, 10).items.map((e) => e.seq),
    [mine.seq],
  );
  assert.equal(
    pageEvents(db, { workspace: 'w1', includeGlobal: true }, {}, undefined, 10).items.map((e) => e.seq),
    [mine.seq, host.seq],
  );
});

test('cursor and window parameters are validated', () => {
  assert.is(directorErrorOf(() => parseCursor('abc')).details?.field, 'after');
  assert.is(parseCursor('42'), 42);
  assert.is(parseWindow('24h'), 86_400_000);
  assert.is(parseWindow('30m'), 1_800_000);
  assert.is(directorErrorOf(() => parseWindow('5s')).details?.field, 'window');
  assert.is(directorErrorOf(() => parseWindow('forever')).details?.field, 'window');
});

test('summary counts by type, severity and sandbox, ranks offenders by high/critical and buckets a trend', () => {
  const { db, sink, clock } = fresh();
  sink.emit(ev({ sandboxId: 'sbx_old', severity: 'critical' }));
  clock.now += 2 * 3_600_000;
  const start = clock.now;
  sink.emit(ev({ sandboxId: 'sbx_a', severity: 'high' }));
  sink.emit(ev({ sandboxId: 'sbx_a', severity: 'critical', type: 'oom_killed' }));
  sink.emit(ev({ sandboxId: 'sbx_b', severity: 'high' }));
  sink.emit(ev({ sandboxId: 'sbx_b', severity: 'low' }));
  sink.emit(ev({ sandboxId: 'sbx_b', severity: 'low' }));
  clock.now += 30 * 60_000;
  sink.emit(ev({ severity: 'info', type: 'sandbox_created' }));
  const s = summarize(db, W1, clock.nowMs(), 3_600_000, 12);
  assert.is(s.total, 6);
  assert.equal(s.byType, { exec_denied: 4, oom_killed: 1, sandbox_created: 1 });
  assert.equal(s.bySeverity, { info: 1, low: 2, medium: 0, high: 2, critical: 1 });
  assert.equal(s.bySandbox, [
    { sandboxId: 'sbx_b', count: 3 },
    { sandboxId: 'sbx_a', count: 2 },
  ]);
  assert.equal(s.topOffenders, [
    { sandboxId: 'sbx_a', high: 1, critical: 1, count: 2 },
    { sandboxId: 'sbx_b', high: 1, critical: 0, count: 1 },
  ]);
  assert.is(s.trend.length, 12);
  assert.is(
    s.trend.reduce((a, b) => a + b.count, 0),
    6,
  );
  const first = s.trend.find((b) => b.count === 5)!;
  assert.ok(Date.parse(first.start) <= start && start < Date.parse(first.end));
  assert.is(first.highOrCritical, 3);
  assert.is(s.trend.at(-1)?.count, 1);
});

test('export yields every matching event in order and stops at the newest one when it started', async () => {
  const { db, sink } = fresh();
  const before = Array.from({ length: 12 }, () => sink.emit(ev()).seq);
  const got: number[] = [];
  for await (const e of exportEvents(db, W1, {}, 5)) {
    got.push(e.seq);
    sink.emit(ev());
  }
  assert.equal(got, before);
});

test('retention deletes only events older than the period, in batches', () => {
  const { db, sink, clock } = fresh();
  for (let i = 0; i < 7; i++) sink.emit(ev());
  clock.now += 10 * 86_400_000;
  const keep = sink.emit(ev());
  assert.is(purgeExpiredEvents(db, clock.nowMs(), 5 * 86_400_000, 3), 7);
  assert.equal(
    pageEvents(db, W1, {}, undefined, 100).items.map((e) => e.seq),
    [keep.seq],
  );
  // AUTOINCREMENT: a deleted seq is never handed out again, so old cursors stay meaningful.
  clock.now += 40 * 86_400_000;
  const job = startRetentionJob({ db, clock, retentionDays: 30 });
  job.stop();
  const next = sink.emit(ev());
  assert.ok(next.seq > keep.seq);
  assert.equal(
    pageEvents(db, W1, {}, undefined, 100).items.map((e) => e.seq),
    [next.seq],
  );
});

test.run();
