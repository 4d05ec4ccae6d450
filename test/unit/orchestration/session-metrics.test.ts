/**
 * SessionService.metricsChanged: a burst of metric changes of one session is one
 * `session_updated` event, sent when the coalescing window ends, through the injected timer.
 * The same over the WebSocket is in test/integration/api/ws-seed-client.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { openDb } from '../../../core/db.ts';
import type { EventSink } from '../../../runtime/events.ts';
import { METRICS_UPDATE_COALESCE_MS, SessionService } from '../../../orchestration/sessions/service.ts';
import { SessionStore } from '../../../orchestration/sessions/store.ts';

const caller = { workspace: 'wsp_t', actor: 'usr_alice' };

function setup() {
  const db = openDb('/tmp/x', ':memory:');
  const emitted: string[] = [];
  const events = { emit: (e: { type: string }) => (emitted.push(e.type), e), flush: () => undefined } as unknown as EventSink;
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const sessions = new SessionService({
    store: new SessionStore(db),
    events,
    clock: { nowMs: () => Date.now() },
    config: { sessionDefaultTimeoutMs: 3_600_000, sessionMaxTimeoutMs: 86_400_000 },
    logger: pino({ level: 'silent' }),
    countDepartments: () => 0,
    countTasks: () => 0,
    setTimer: (fn, ms) => {
      const t = { fn, ms, cancelled: false };
      timers.push(t);
      return () => {
        t.cancelled = true;
      };
    },
  });
  const metricTimers = () => timers.filter((t) => t.ms === METRICS_UPDATE_COALESCE_MS && !t.cancelled);
  return { db, sessions, emitted, metricTimers };
}

test('a burst of metric changes of one session is one session_updated, when the injected timer fires', () => {
  const { db, sessions, emitted, metricTimers } = setup();
  const s = sessions.create(caller, { type: 'director', name: 'burst' });
  emitted.length = 0;
  for (let i = 0; i < 5; i++) sessions.metricsChanged(s.id);
  assert.is(metricTimers().length, 1);
  assert.equal(emitted, []);
  metricTimers()[0]!.fn();
  assert.equal(emitted, ['session_updated']);
  // The window is over: the next change starts another.
  sessions.metricsChanged(s.id);
  assert.is(metricTimers().length, 2);
  sessions.close();
  db.close();
});

test('close cancels the updates still due', () => {
  const { db, sessions, emitted, metricTimers } = setup();
  const s = sessions.create(caller, { type: 'director', name: 'closing' });
  emitted.length = 0;
  sessions.metricsChanged(s.id);
  const [due] = metricTimers();
  sessions.close();
  assert.ok(due?.cancelled);
  sessions.metricsChanged(s.id);
  assert.is(metricTimers().length, 0);
  assert.equal(emitted, []);
  db.close();
});

test.run();
