import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { systemClock } from '../../../core/clock.ts';
import { createEventSink, type EventSink } from '../../../runtime/events.ts';
import { openDb, type Db } from '../../../core/db.ts';
import { WebhookDispatcher } from '../../../runtime/webhooks/dispatcher.ts';
import { resolveOptions, type DispatcherOptions } from '../../../runtime/webhooks/options.ts';
import { WebhookStore } from '../../../runtime/webhooks/store.ts';
import type { Transport, TransportRequest } from '../../../runtime/webhooks/transport.ts';

export const SECRET = 'unit-test-secret-0123';

export interface Harness {
  db: Db;
  dir: string;
  store: WebhookStore;
  events: EventSink;
  dispatcher: WebhookDispatcher;
  logs: Record<string, unknown>[];
  /** Stops the dispatcher and closes the store (the data dir stays for a restart). */
  stop(): Promise<void>;
}

/** A dispatcher over a real SQLite file in `dir` (fresh unless given), fast retry options, a captured logger. */
export function harness(
  transport: Transport,
  options: Partial<DispatcherOptions> = {},
  dir = mkdtempSync(path.join(tmpdir(), 'director-webhooks-')),
): Harness {
  const db = openDb(dir);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const store = new WebhookStore(db, systemClock);
  const events = createEventSink(db, systemClock);
  const opts = resolveOptions({ baseDelayMs: 20, maxDelayMs: 1000, jitterRatio: 0, timeoutMs: 2000, ...options }, {});
  const dispatcher = new WebhookDispatcher({ store, events, clock: systemClock, logger, transport, options: opts });
  dispatcher.start();
  return {
    db,
    dir,
    store,
    events,
    dispatcher,
    logs,
    async stop() {
      await dispatcher.stop();
      db.close();
    },
  };
}

export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(fn: () => T, timeoutMs = 5000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** A transport that records requests and answers with `answer` (a status, or a thrown error). */
export function recorder(answer: (req: TransportRequest, n: number) => Promise<number> | number = () => 200) {
  const calls: (TransportRequest & { atMs: number; payload: { event: string; data: Record<string, unknown>; timestamp: string } })[] = [];
  const transport: Transport = async (req) => {
    calls.push({ ...req, atMs: Date.now(), payload: JSON.parse(req.body) as never });
    return { statusCode: await answer(req, calls.length) };
  };
  return { calls, transport };
}

/** Resolves when `signal` aborts, rejecting like a real client would. */
export const hangUntilAborted = (signal: AbortSignal) =>
  new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
