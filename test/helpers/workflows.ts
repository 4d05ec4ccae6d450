/**
 * Workflow helpers for tests over real HTTP: create and start, wait for a run to reach a state,
 * run a command in a sandbox, and read a workflow's server-sent events.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as assert from 'uvu/assert';
import { call } from './api.ts';
import { sleep } from './runtime.ts';

export interface Attempt {
  attempt: number;
  round: number;
  status: string;
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  criteria?: { criterion: string; ok: boolean; saw: string }[];
  checkpointId?: string;
  error?: string;
  killedProcesses?: number;
  killError?: string;
}

export interface RunView {
  id: string;
  number: number;
  status: string;
  step: number;
  progress: number;
  currentStep: { step: number; type: string; status: string; startTime: string } | null;
  retries: number;
  maxRetries: number;
  sandboxId: string | null;
  checkpoint: { step: number; id: string } | null;
  reason: { code: string; message: string; step?: number; criterion?: string; saw?: string; exitCode?: number } | null;
  output: string | null;
  context: Record<string, unknown>;
  environmentKeys: string[];
  nextAttemptAt: string | null;
  startedAt: string | null;
  deadlineAt: string | null;
  endedAt: string | null;
  steps: { step: number; type: string; status: string; attempts: Attempt[] }[];
  rollbacks: { attempt: number; status: string; checkpointId: string; resumeStep: number }[];
}

export interface StatusView {
  workflowId: string;
  status: string;
  totalSteps: number;
  run: RunView | null;
}

export const ENDED = ['completed', 'failed', 'cancelled', 'timed_out'];

export class WorkflowClient {
  readonly url: string;
  readonly token: string;
  constructor(url: string, token: string) {
    this.url = url;
    this.token = token;
  }

  async post<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return call<{ data: T }>(this.url, 'POST', path, {
      token: this.token,
      ...(body === undefined ? {} : { body }),
      ...(headers ? { headers } : {}),
    });
  }

  async get<T = unknown>(path: string) {
    return call<{ data: T }>(this.url, 'GET', path, { token: this.token });
  }

  async session(body: Record<string, unknown> = {}): Promise<string> {
    const r = await this.post<{ id: string }>('/v1/sessions', { name: 'workflows', ...body });
    assert.is(r.status, 201, r.text);
    return r.body.data.id;
  }

  /** A running sandbox of the session (busybox unless `body` says otherwise). */
  async sandbox(sessionId: string, body: Record<string, unknown> = {}): Promise<string> {
    const r = await this.post<{ id: string }>('/v1/sandboxes', { sessionId, ...body });
    assert.is(r.status, 201, r.text);
    return r.body.data.id;
  }

  async create(body: Record<string, unknown>): Promise<string> {
    const r = await this.post<{ id: string }>('/v1/workflows', body);
    assert.is(r.status, 201, r.text);
    return r.body.data.id;
  }

  /** A new session, a running sandbox in it, and the workflow `body` bound to both (its `sessionId` and `sandboxId`). */
  async inSandbox(body: Record<string, unknown>): Promise<{ ses: string; sbx: string; id: string }> {
    const ses = await this.session();
    const sbx = await this.sandbox(ses);
    return { ses, sbx, id: await this.create({ sessionId: ses, sandboxId: sbx, ...body }) };
  }

  async start(id: string, body?: Record<string, unknown>): Promise<StatusView> {
    const r = await this.post<StatusView>(`/v1/workflows/${id}/start`, body);
    assert.is(r.status, 202, r.text);
    return r.body.data;
  }

  async status(id: string): Promise<StatusView> {
    const r = await this.get<StatusView>(`/v1/workflows/${id}/status`);
    assert.is(r.status, 200, r.text);
    return r.body.data;
  }

  /** Polls the status until `pred` holds (default: the latest run ended). */
  async until(
    id: string,
    pred: (s: StatusView) => boolean = (s) => ENDED.includes(s.run?.status ?? ''),
    timeoutMs = 60_000,
  ): Promise<StatusView> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status(id);
      if (pred(s)) return s;
      if (Date.now() > until)
        throw new Error(`workflow ${id} did not get there in ${timeoutMs} ms: ${JSON.stringify(s.run).slice(0, 600)}`);
      await sleep(100);
    }
  }

  /** Writes one file into a sandbox through the files API. */
  async write(sandboxId: string, path: string, content: string): Promise<void> {
    const r = await call(this.url, 'PUT', `/v1/sandboxes/${sandboxId}/files?path=${encodeURIComponent(path)}`, {
      token: this.token,
      raw: content,
      headers: { 'content-type': 'application/octet-stream' },
    });
    assert.is(r.status, 200, r.text);
  }

  /** Runs a command in a sandbox through the API. */
  async exec(sandboxId: string, command: string | string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await this.post<{ exitCode: number; stdout: string; stderr: string }>(`/v1/sandboxes/${sandboxId}/execute`, {
      command,
      timeout: 20_000,
    });
    assert.is(r.status, 200, r.text);
    return r.body.data;
  }
}

/** No attempt of any step, and no rollback, still running; no current step, no retry pending. */
export function assertSettled(s: StatusView, what: string): void {
  const run = s.run!;
  for (const st of run.steps)
    for (const a of st.attempts) assert.is.not(a.status, 'running', `${what}: step ${st.step} attempt ${a.attempt} still running`);
  for (const r of run.rollbacks) assert.is.not(r.status, 'running', `${what}: rollback ${r.attempt} still running`);
  assert.is(run.currentStep, null, `${what}: a current step`);
  assert.is(run.nextAttemptAt, null, `${what}: a retry pending`);
}

/** The latest attempt of `step` (1-based) is running. */
export const stepRunning = (s: StatusView, step: number): boolean => s.run?.steps[step - 1]?.attempts.at(-1)?.status === 'running';

/** director_workflow_runs_total by outcome. */
export async function outcomes(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^director_workflow_runs_total\{outcome="(\w+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}
/** What each outcome counted between two readings of {@link outcomes} (only those that moved). */
export const counted = (before: Record<string, number>, after: Record<string, number>): Record<string, number> =>
  Object.fromEntries(ENDED.map((k): [string, number] => [k, (after[k] ?? 0) - (before[k] ?? 0)]).filter(([, n]) => n !== 0));

export interface SseEvent {
  id: number | null;
  event: string;
  data: Record<string, unknown>;
}

/**
 * Reads a workflow's event stream until it ends, `stopAfter` events were read, or `signal` aborts.
 * `lastEventId` resumes after that id.
 */
export async function readEvents(
  url: string,
  token: string,
  id: string,
  opts: { lastEventId?: number; stopAfter?: number; signal?: AbortSignal } = {},
): Promise<{ status: number; events: SseEvent[]; ended: boolean }> {
  const ac = new AbortController();
  // A stream that never ends fails the test instead of hanging the file.
  const signal = opts.signal ?? AbortSignal.timeout(30_000);
  signal.addEventListener('abort', () => ac.abort(), { once: true });
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
  if (opts.lastEventId !== undefined) headers['last-event-id'] = String(opts.lastEventId);
  const res = await fetch(`${url}/v1/workflows/${id}/events`, { headers, signal: ac.signal });
  const events: SseEvent[] = [];
  if (res.status !== 200 || !res.body) return { status: res.status, events, ended: false };
  const decoder = new TextDecoder();
  let buf = '';
  let ended = false;
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const lines = block.split('\n').filter((l) => !l.startsWith(':'));
        if (!lines.length) continue;
        const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        const e: SseEvent = {
          id: field('id') ? Number(field('id')) : null,
          event: field('event') ?? 'message',
          data: JSON.parse(field('data') ?? '{}'),
        };
        if (e.event === 'end') ended = true;
        else events.push(e);
        if (opts.stopAfter !== undefined && events.length >= opts.stopAfter) {
          ac.abort();
          return { status: res.status, events, ended };
        }
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  }
  return { status: res.status, events, ended };
}

/** A webhook receiver on loopback: what it was sent, its URL, and how to stop it. */
export interface HookReceiver {
  url: string;
  received: { event: string; data: Record<string, unknown> }[];
  close(): void;
}

export async function startHookReceiver(): Promise<HookReceiver> {
  const received: HookReceiver['received'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as { event: string; data: Record<string, unknown> });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, close: () => server.close() };
}
