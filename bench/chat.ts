/**
 * What chat through Director adds, from one run on this machine (issue 17), for each provider
 * wire format (a local provider speaking it, as in the tests):
 * (a) first `content` event: `POST /v1/chat` with `Accept: text/event-stream`, from sending the
 *     request to the first `content` frame, vs. the same request (the body Director sent the
 *     provider the turn before) sent straight to the provider, to its first content chunk;
 * (b) a tool round trip, model → `execute echo` → model: from the end of the provider's
 *     tool-call response to the arrival of the request that carries the result (the SDK parsing
 *     the call, the approval gate, the agent's sandbox lookup, the execute, events, the next
 *     request), vs. the execute alone (the runtime's Executor on the same sandbox, same command).
 * Rounds alternate which case goes first; samples are spaced so each execute finds its exec
 * launcher ready. Prints p50/p95/p99 and the difference at p50 (targets: ≤ 5 ms each).
 */
import { Agent, request } from 'node:http';
import { call, startApi } from '../test/helpers/api.ts';
import { startFakeLlm, type FakeLlm, type FakeLlmKind } from '../test/helpers/fake-llm.ts';
import { printTable, summarize, type Summary } from './stats.ts';

const SAMPLES = Number(process.env.BENCH_CHAT_SAMPLES ?? 40);
const ROUNDS = Number(process.env.BENCH_CHAT_ROUNDS ?? 8);
const GAP_MS = 100;
const FORMATS = (process.env.BENCH_CHAT_FORMATS ?? 'openai,anthropic').split(',') as FakeLlmKind[];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

/**
 * POSTs `body` and resolves, once the response ended, with the time (performance.now) the first
 * chunk containing `marker` arrived.
 */
function firstMarker(url: string, headers: Record<string, string>, body: string, marker: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, method: 'POST', path: u.pathname, agent, headers }, (res) => {
      let seen = '';
      let at = Number.NaN;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (!Number.isNaN(at)) return;
        seen += d;
        if (seen.includes(marker)) at = performance.now();
      });
      res.on('end', () =>
        Number.isNaN(at) ? reject(new Error(`no ${marker} (status ${res.statusCode}): ${seen.slice(0, 300)}`)) : resolve(at),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function benchFormat(kind: FakeLlmKind): Promise<void> {
  const llm: FakeLlm = await startFakeLlm(kind);
  const api = await startApi({
    rateLimitSession: 1_000_000,
    rateLimitSandbox: 1_000_000,
    rateLimitGeneral: 1_000_000,
    llmProvider: kind === 'openai' ? 'openai-compatible' : 'anthropic',
    llmBaseUrl: llm.baseUrl,
    llmApiKey: 'bench-key',
    llmModel: 'bench-model',
    llmMaxRetries: 0,
  });
  try {
    const post = async <T>(path: string, body: unknown) => {
      const r = await call<{ data: T }>(api.url, 'POST', path, { token: api.adminToken, body });
      if (r.status >= 300) throw new Error(`${path}: ${r.status} ${r.text}`);
      return r.body.data;
    };
    const session = await post<{ id: string }>('/v1/sessions', { name: 'bench' });
    const dep = await post<{ id: string }>('/v1/departments', { sessionId: session.id, name: 'bench', domain: 'bench' });
    const a = await post<{ id: string }>('/v1/agents', { departmentId: dep.id, name: 'bench', approvalPolicy: 'never' });
    const chatHeaders = { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json', accept: 'text/event-stream' };
    const chatBody = (message: string) => JSON.stringify({ agent: a.id, message });

    const throughDirector = async (): Promise<number> => {
      llm.script([{ text: ['Hi', ' there'] }]);
      const t0 = performance.now();
      return (await firstMarker(`${api.url}/v1/chat`, chatHeaders, chatBody('hello'), 'event: content')) - t0;
    };
    const direct = async (): Promise<number> => {
      // The request Director sent last: same body, same headers the provider needs.
      const last = llm.requests.at(-1)!;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      for (const h of ['authorization', 'x-api-key', 'anthropic-version']) {
        const v = last.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      llm.script([{ text: ['Hi', ' there'] }]);
      const t0 = performance.now();
      return (await firstMarker(`${llm.baseUrl.replace(/\/v1$/, '')}${last.path}`, headers, last.raw, '"Hi"')) - t0;
    };
    const roundTrip = async (): Promise<number> => {
      llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo hi' } }] }, { text: 'ok' }]);
      const before = llm.requests.length;
      await firstMarker(`${api.url}/v1/chat`, chatHeaders, chatBody('run echo'), 'event: done');
      const [callResp, next] = [llm.requests[before]!, llm.requests[before + 1]!];
      if (!next) throw new Error('the tool result never went back to the model');
      return next.receivedAt - callResp.respondedAt;
    };
    // Warm up: the agent's sandbox is made at its first tool call.
    for (let i = 0; i < 3; i++) {
      await throughDirector();
      await roundTrip();
      await sleep(GAP_MS);
    }
    const sbx = api.rt.sandboxes.deps.store.ofSession(session.id).find((r) => r.status === 'running')!;
    const caller = { workspace: sbx.workspace, actor: 'bench' };
    const execAlone = async (): Promise<number> => {
      const t0 = performance.now();
      const r = await api.rt.executor.run(caller, sbx.id, { command: 'echo hi', workdir: '/workspace', environment: {} });
      if (r.exitCode !== 0) throw new Error(`execute failed: ${r.stderr}`);
      return performance.now() - t0;
    };

    const samples = { direct: [] as number[], director: [] as number[], exec: [] as number[], trip: [] as number[] };
    const per = Math.max(1, Math.round(SAMPLES / ROUNDS));
    for (let round = 0; round < ROUNDS; round++) {
      const pairs: [number[], () => Promise<number>][][] = [
        [
          [samples.direct, direct],
          [samples.director, throughDirector],
        ],
        [
          [samples.exec, execAlone],
          [samples.trip, roundTrip],
        ],
      ];
      for (const pair of pairs) {
        const order = round % 2 === 0 ? pair : [...pair].reverse();
        for (const [into, fn] of order) {
          for (let i = 0; i < per; i++) {
            into.push(await fn());
            await sleep(GAP_MS);
          }
        }
      }
    }
    const s = (x: number[]): Summary => summarize(x);
    const [d, v, e, t] = [s(samples.direct), s(samples.director), s(samples.exec), s(samples.trip)];
    printTable(`chat (${kind} wire format), ${ROUNDS} rotated rounds`, [
      ['first content: straight to the provider', d, null],
      ['first content: through Director (SSE)', v, d],
      ['execute echo alone (runtime Executor)', e, null],
      ['tool round trip: model → execute → model', t, e],
    ]);
    console.log(
      `added at p50: first content ${(v.p50 - d.p50).toFixed(2)} ms (p95 ${(v.p95 - d.p95).toFixed(2)}), tool round trip ${(t.p50 - e.p50).toFixed(2)} ms (p95 ${(t.p95 - e.p95).toFixed(2)}); targets ≤ 5 ms`,
    );
  } finally {
    await api.close();
    await llm.close();
  }
}

export async function benchChat(): Promise<void> {
  for (const kind of FORMATS) await benchFormat(kind);
  agent.destroy();
}
