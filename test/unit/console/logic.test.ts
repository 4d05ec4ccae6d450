/** The console's pure parts: event filtering and merging, metric series, formatting, routes. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { SecurityEvent } from '../../../console/src/api/types.ts';
import { wsUrl } from '../../../console/src/api/ws-url.ts';
import { filterQuery, matches, mergeEvents, NO_FILTER } from '../../../console/src/views/event-filter.ts';
import { pushSample, sparkPoints } from '../../../console/src/ui/series.ts';
import { formatBytes, formatMs, summarizeDetails, summarizeInput } from '../../../console/src/ui/format.ts';

const test = suite('console logic');

const ev = (seq: number, over: Partial<SecurityEvent> = {}): SecurityEvent => ({
  id: `evt_${seq}`,
  seq,
  type: 'egress_denied',
  severity: 'medium',
  timestamp: new Date(1_700_000_000_000 + seq).toISOString(),
  workspace: 'wsp_a',
  sandboxId: 'sbx_a',
  networkId: 'net_a',
  sessionId: null,
  actor: null,
  details: {},
  ...over,
});

test('the filter keeps events at or above the severity and matching type, sandbox and network', () => {
  const f = { ...NO_FILTER, minSeverity: 'medium' as const, type: 'egress_denied', sandboxId: 'sbx_a', networkId: 'net_a' };
  assert.ok(matches(ev(1), f));
  assert.ok(matches(ev(1, { severity: 'critical' }), f));
  assert.not.ok(matches(ev(1, { severity: 'low' }), f));
  assert.not.ok(matches(ev(1, { type: 'exec_denied' }), f));
  assert.not.ok(matches(ev(1, { sandboxId: 'sbx_b' }), f));
  assert.not.ok(matches(ev(1, { networkId: null }), f));
  assert.ok(matches(ev(1, { severity: 'info', sandboxId: null }), NO_FILTER));
});

test('the export query carries the same filter, and nothing for an empty one', () => {
  assert.is(filterQuery(NO_FILTER).toString(), '');
  const q = filterQuery({ minSeverity: 'high', type: ' egress_denied ', sandboxId: 'sbx_a', networkId: '' });
  assert.is(q.toString(), 'minSeverity=high&type=egress_denied&sandboxId=sbx_a');
});

test('merging keeps newest first, drops duplicates by seq and caps the list', () => {
  const list = mergeEvents([], [ev(1), ev(3)], 10);
  assert.equal(
    list.map((e) => e.seq),
    [3, 1],
  );
  const more = mergeEvents(list, [ev(2), ev(3), ev(4)], 3);
  assert.equal(
    more.map((e) => e.seq),
    [4, 3, 2],
  );
  assert.is(mergeEvents(more, [ev(4)], 3), more, 'nothing new: the same list');
});

test('series keep the newest samples and draw inside the box, a spike included', () => {
  let s = pushSample([], { atMs: 0, value: 10 }, 3);
  s = pushSample(s, { atMs: 1000, value: 50 }, 3);
  s = pushSample(s, { atMs: 2000, value: 200 }, 3);
  s = pushSample(s, { atMs: 3000, value: 0 }, 3);
  assert.equal(
    s.map((x) => x.atMs),
    [1000, 2000, 3000],
  );
  assert.is(sparkPoints(s, 100, 50, 100), '0,37.5 50,0 100,50');
  assert.is(sparkPoints([], 100, 50), '');
  assert.is(sparkPoints([{ atMs: 5, value: 1 }], 100, 50, 2), '100,25');
});

test('formatting: bytes in binary units, details as a short key=value line', () => {
  assert.is(formatBytes(512), '512 B');
  assert.is(formatBytes(1536), '1.5 KiB');
  assert.is(formatBytes(256 * 1024 * 1024), '256 MiB');
  assert.is(formatBytes(null), '–');
  assert.is(summarizeDetails({ destination: '203.0.113.10', port: 80, nested: { a: 1 }, long: 'x'.repeat(80) }).split(' ').length, 3);
  assert.match(summarizeDetails({ long: 'x'.repeat(80) }), /…$/);
});

test('a tool call input on one line: the command as a shell line, other inputs as JSON, cut', () => {
  assert.is(summarizeInput({ command: 'echo hi' }), 'echo hi');
  assert.is(summarizeInput({ command: ['ls', '-la', '/workspace'] }), 'ls -la /workspace');
  assert.is(summarizeInput({ command: 'make', timeout: 5000 }), 'make (timeout=5000)');
  assert.is(summarizeInput({ path: '/workspace/a.txt' }), '{"path":"/workspace/a.txt"}');
  const long = summarizeInput({ command: 'x'.repeat(500) }, 40);
  assert.is(long.length, 40);
  assert.match(long, /…$/);
  assert.is(formatMs(850), '850 ms');
  assert.is(formatMs(2400), '2.4 s');
  assert.is(formatMs(null), '–');
});

test('WebSocket URLs follow the page scheme and never carry credentials', () => {
  assert.is(wsUrl('/v1/ws', { protocol: 'http:', host: '127.0.0.1:8080' }), 'ws://127.0.0.1:8080/v1/ws');
  assert.is(wsUrl('/v1/ws', { protocol: 'https:', host: 'director.example' }), 'wss://director.example/v1/ws');
});

test.run();
