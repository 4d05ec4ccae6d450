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
 * Each also through the AI SDK alone, in this process, without Director: `streamText` with the
 * same model object Director uses, the same history (read from the session's messages), the same
 * tools (their `execute` calling the runtime's Executor directly), the SDK's telemetry off as
 * Director has it (`telemetry: { isEnabled: false }`). That splits what is added into
 * what the SDK adds (prompt conversion, fetch, stream parsing, the tool loop) and what Director
 * adds around it.
 * The execute's own time varies far more than what is added around it (tens of ms at p95 on a
 * busy machine), so each round trip is also given minus the execute it contained (the runtime's
 * Executor timed in place): the paired figure the targets are about. What the execute leaves
 * running on this thread once it answered (the exec launcher's re-arm: an engine exec started
 * right after the command ended) falls inside the round trip, in both the SDK's and Director's.
 * `DIRECTOR_TEST_EXEC_AGENT=on` runs the executes through the exec agent instead.
 * Rounds rotate which case goes first; samples are spaced so each execute finds its exec
 * launcher ready. Prints p50/p95/p99 and the difference at p50 (targets: ≤ 5 ms each).
 * The HTTP client runs in another process, as a user's does (bench/remote-client.ts, forked here,
 * over loopback): it times Director's first `content` frame and the straight-to-the-provider floor
 * alike, with one kept-alive agent, from just before it writes the request. (A client sharing
 * Director's thread read the frame only after Director had processed the rest of the turn, whose
 * chunks the test provider sends in one segment: ~2 ms more.) The test provider itself runs in
 * this process, beside Director, for both cases. (a) is also given up to when Director emitted
 * the event (its SSE frame is written in the same microtask run, and leaves at once), on the
 * clock both processes share (`performance.timeOrigin + now()`).
 * The history the round trips run with is printed: the session grows by the samples' turns.
 * `BENCH_CHAT_BEFORE=<another checkout>` also runs Director as that checkout's code builds it (a
 * second server in this process, with its own modules, the same provider and client), its cases
 * alternated with this one's in the same rounds: a change compared with the code before it on
 * the same machine at the same moment (`git worktree add` or `git archive` the older commit; link
 * its node_modules).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { stepCountIs, streamText } from 'ai';
import { historyWindow } from '../orchestration/chat/history.ts';
import { MessageStore } from '../orchestration/chat/messages.ts';
import { toolSet } from '../orchestration/chat/tools.ts';
import type { ToolName } from '../orchestration/agents/schemas.ts';
import { call, startApi, type TestApi } from '../test/helpers/api.ts';
import { startFakeLlm, type FakeLlm, type FakeLlmKind } from '../test/helpers/fake-llm.ts';
import { startRemoteClient, type RemoteClient } from './remote-client.ts';
import { printTable, summarize, type Summary } from './stats.ts';

const SAMPLES = Number(process.env.BENCH_CHAT_SAMPLES ?? 40);
const ROUNDS = Number(process.env.BENCH_CHAT_ROUNDS ?? 8);
const GAP_MS = 100;
const FORMATS = (process.env.BENCH_CHAT_FORMATS ?? 'openai,anthropic').split(',') as FakeLlmKind[];
/** Another checkout (its own node_modules reachable) whose Director is measured alongside, alternated in the same rounds. */
const BEFORE = process.env.BENCH_CHAT_BEFORE ? path.resolve(process.env.BENCH_CHAT_BEFORE) : null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * POSTs `body` from the client process (`remote-client.ts`): when it wrote the request (on the
 * clock both processes share) and how long until the answer first held `marker`.
 */
async function timeTo(
  client: RemoteClient,
  url: string,
  headers: Record<string, string>,
  body: string,
  marker: string,
): Promise<{ startedAt: number; ms: number }> {
  const r = await client.request({ url, method: 'POST', headers, raw: body, marker });
  if (Number.isNaN(r.markerMs)) throw new Error(`no ${marker} (status ${r.status}): ${r.text.slice(0, 300)}`);
  return { startedAt: r.startedAt, ms: r.markerMs };
}

/** A Director server of the bench, with its own session and agent (and, after warm-up, sandbox). */
interface Variant {
  label: string;
  api: TestApi;
  /** Through this Director: first `content` event (client-timed), and when Director emitted it, minus the request's start. */
  firstContent: () => Promise<number>;
  /** model → execute → model through this Director (see the header); pushes the same minus its own execute to `paired`. */
  roundTrip: () => Promise<number>;
  emitted: number[];
  paired: number[];
  /** The request this Director sent for its last first-content turn. */
  lastTurn: FakeLlm['requests'][number] | null;
  sessionId: string;
  agent: { id: string; tools: ToolName[]; maxOutputTokens: number; maxHistoryMessages: number };
}

const apiConfig = (kind: FakeLlmKind, llm: FakeLlm) => ({
  rateLimitSession: 1_000_000,
  rateLimitSandbox: 1_000_000,
  rateLimitGeneral: 1_000_000,
  llmProvider: kind === 'openai' ? ('openai-compatible' as const) : ('anthropic' as const),
  llmBaseUrl: llm.baseUrl,
  llmApiKey: 'bench-key',
  llmModel: 'bench-model',
  llmMaxRetries: 0,
});

/** The execute each round trip contained, timed where it ran (the variants' executors and the SDK-alone tools set it). */
const execTiming = { lastMs: Number.NaN };

async function variant(label: string, api: TestApi, llm: FakeLlm, client: RemoteClient): Promise<Variant> {
  const post = async <T>(path: string, body: unknown) => {
    const r = await call<{ data: T }>(api.url, 'POST', path, { token: api.adminToken, body });
    if (r.status >= 300) throw new Error(`${path}: ${r.status} ${r.text}`);
    return r.body.data;
  };
  const session = await post<{ id: string }>('/v1/sessions', { name: 'bench' });
  const dep = await post<{ id: string }>('/v1/departments', { sessionId: session.id, name: 'bench', domain: 'bench' });
  const agent = await post<{ id: string; tools: ToolName[]; maxOutputTokens: number; maxHistoryMessages: number }>('/v1/agents', {
    departmentId: dep.id,
    name: 'bench',
    approvalPolicy: 'never',
  });
  const chatHeaders = { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json', accept: 'text/event-stream' };
  const chatBody = (message: string) => JSON.stringify({ agent: agent.id, message });
  // Every execute of this Director timed where it runs.
  const executor = api.rt.executor;
  const run = executor.run.bind(executor);
  executor.run = async (...args: Parameters<typeof run>) => {
    const t = performance.now();
    try {
      return await run(...args);
    } finally {
      execTiming.lastMs = performance.now() - t;
    }
  };
  /**
   * When Director emitted the turn's first `content` event (its SSE frame is written in the same
   * microtask run), on the clock shared with the client process.
   */
  let emittedAt = Number.NaN;
  api.orch.chat.log.subscribe((e) => {
    if (e.type === 'content' && e.sessionId === session.id && Number.isNaN(emittedAt))
      emittedAt = performance.timeOrigin + performance.now();
  });
  const v: Variant = {
    label,
    api,
    emitted: [],
    paired: [],
    lastTurn: null,
    sessionId: session.id,
    agent,
    firstContent: async () => {
      llm.script([{ text: ['Hi', ' there'] }]);
      const before = llm.requests.length;
      emittedAt = Number.NaN;
      const r = await timeTo(client, `${api.url}/v1/chat`, chatHeaders, chatBody('hello'), 'event: content');
      v.lastTurn = llm.requests[before] ?? null;
      v.emitted.push(emittedAt - r.startedAt);
      return r.ms;
    },
    roundTrip: async () => {
      llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo hi' } }] }, { text: 'ok' }]);
      const before = llm.requests.length;
      execTiming.lastMs = Number.NaN;
      await timeTo(client, `${api.url}/v1/chat`, chatHeaders, chatBody('run echo'), 'event: done');
      const [callResp, next] = [llm.requests[before]!, llm.requests[before + 1]!];
      if (!next) throw new Error('the tool result never went back to the model');
      const ms = next.receivedAt - callResp.respondedAt;
      v.paired.push(ms - execTiming.lastMs);
      return ms;
    },
  };
  // Warm up: the agent's sandbox is made at its first tool call.
  for (let i = 0; i < 3; i++) {
    await v.firstContent();
    await v.roundTrip();
    await sleep(GAP_MS);
  }
  v.emitted.length = 0;
  v.paired.length = 0;
  return v;
}

async function benchFormat(kind: FakeLlmKind): Promise<void> {
  const llm: FakeLlm = await startFakeLlm(kind);
  const client = await startRemoteClient();
  const servers: TestApi[] = [];
  try {
    const api = await startApi(apiConfig(kind, llm));
    servers.push(api);
    const variants = [await variant('through Director', api, llm, client)];
    if (BEFORE) {
      // The same bench against a server built from another checkout's code (its own modules), alternated in the same rounds.
      const { startApi: startBefore } = (await import(pathToFileURL(path.join(BEFORE, 'test/helpers/api.ts')).href)) as {
        startApi: typeof startApi;
      };
      const before = await startBefore(apiConfig(kind, llm));
      servers.push(before);
      variants.push(await variant(`before (${path.basename(BEFORE)})`, before, llm, client));
    }
    const main = variants[0]!;
    const sbx = api.rt.sandboxes.deps.store.ofSession(main.sessionId).find((r) => r.status === 'running')!;
    const caller = { workspace: sbx.workspace, actor: 'bench' };
    // The AI SDK alone: the model object Director built (same provider settings), the session's history.
    const model = api.orch.chat.providers.resolve(sbx.workspace, null, null).languageModel;
    // A fresh store per read: Director's own store keeps its histories in memory, this one would not see its writes.
    const historyOf = () => new MessageStore(api.rt.db).history(main.sessionId, main.agent.id);
    const executor = api.rt.executor;
    const sdkTools = toolSet(main.agent.tools, async (_name, input) => {
      const r = await executor.run(caller, sbx.id, {
        command: (input as { command: string }).command,
        workdir: '/workspace',
        environment: {},
      });
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, truncated: r.truncated, timedOut: r.timedOut };
    });
    const sdkTurn = async (message: string, onContent: () => void): Promise<void> => {
      // The window Director sends (orchestration/chat/history.ts), so the comparison stays like for like.
      const messages = historyWindow([...historyOf(), { role: 'user', content: message }], main.agent.maxHistoryMessages);
      const r = streamText({
        model,
        messages,
        tools: sdkTools,
        toolCallConcurrency: 1,
        maxOutputTokens: main.agent.maxOutputTokens,
        maxRetries: 0,
        telemetry: { isEnabled: false },
        stopWhen: stepCountIs(2),
        onError: () => undefined,
      });
      for await (const part of r.fullStream) if (part.type === 'text-delta' && part.text) onContent();
    };
    const direct = async (): Promise<number> => {
      // The request Director sent for its last such turn: same body, same headers the provider needs.
      const last = main.lastTurn!;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      for (const h of ['authorization', 'x-api-key', 'anthropic-version']) {
        const v = last.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      llm.script([{ text: ['Hi', ' there'] }]);
      return (await timeTo(client, `${llm.baseUrl.replace(/\/v1$/, '')}${last.path}`, headers, last.raw, '"Hi"')).ms;
    };
    const sdkPaired: number[] = [];
    const sdkAlone = async (): Promise<number> => {
      llm.script([{ text: ['Hi', ' there'] }]);
      let at = Number.NaN;
      const t0 = performance.now();
      await sdkTurn('hello', () => (at = Number.isNaN(at) ? performance.now() : at));
      return at - t0;
    };
    const sdkTrip = async (): Promise<number> => {
      llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo hi' } }] }, { text: 'ok' }]);
      const before = llm.requests.length;
      execTiming.lastMs = Number.NaN;
      await sdkTurn('run echo', () => undefined);
      const [callResp, next] = [llm.requests[before]!, llm.requests[before + 1]!];
      if (!next) throw new Error('the SDK never sent the tool result back');
      const ms = next.receivedAt - callResp.respondedAt;
      sdkPaired.push(ms - execTiming.lastMs);
      return ms;
    };
    const execAlone = async (): Promise<number> => {
      const t0 = performance.now();
      const r = await executor.run(caller, sbx.id, { command: 'echo hi', workdir: '/workspace', environment: {} });
      if (r.exitCode !== 0) throw new Error(`execute failed: ${r.stderr}`);
      return performance.now() - t0;
    };

    type Case = [number[], () => Promise<number>];
    const samples = { direct: [] as number[], sdk: [] as number[], exec: [] as number[], sdkTrip: [] as number[] };
    const first = variants.map(() => [] as number[]);
    const trips = variants.map(() => [] as number[]);
    const per = Math.max(1, Math.round(SAMPLES / ROUNDS));
    const historyAtStart = historyOf().length;
    for (let round = 0; round < ROUNDS; round++) {
      const groups: Case[][] = [
        [[samples.direct, direct], [samples.sdk, sdkAlone], ...variants.map((v, i): Case => [first[i]!, v.firstContent])],
        [[samples.exec, execAlone], [samples.sdkTrip, sdkTrip], ...variants.map((v, i): Case => [trips[i]!, v.roundTrip])],
      ];
      for (const group of groups) {
        // Each case goes first, second ... and last in turn.
        const k = round % group.length;
        const order = [...group.slice(k), ...group.slice(0, k)];
        for (const [into, fn] of order) {
          for (let i = 0; i < per; i++) {
            into.push(await fn());
            await sleep(GAP_MS);
          }
        }
      }
    }
    const s = (x: number[]): Summary => summarize(x);
    const [d, k, e, kt, pk] = [s(samples.direct), s(samples.sdk), s(samples.exec), s(samples.sdkTrip), s(sdkPaired)];
    const rows: Parameters<typeof printTable>[1] = [
      ['first content: straight to the provider', d, null],
      ['first content: AI SDK alone (streamText)', k, d],
    ];
    variants.forEach((v, i) =>
      rows.push([`first content: ${v.label} (SSE)`, s(first[i]!), d], ['  of which: until Director emitted it', s(v.emitted), d]),
    );
    rows.push(['execute echo alone (runtime Executor)', e, null], ['tool round trip: AI SDK alone', kt, e]);
    variants.forEach((v, i) => rows.push([`tool round trip: ${v.label}`, s(trips[i]!), e]));
    rows.push(['  minus its own execute: AI SDK alone', pk, null]);
    variants.forEach((v) => rows.push([`  minus its own execute: ${v.label}`, s(v.paired), null]));
    printTable(
      `chat (${kind} wire format), ${ROUNDS} rotated rounds, history stored from ${historyAtStart} to ${historyOf().length} messages (each model call sends at most ${main.agent.maxHistoryMessages}: the agent's maxHistoryMessages)`,
      rows,
    );
    const ms = (x: number) => x.toFixed(2);
    variants.forEach((v, i) => {
      const [f, t, pt, em] = [s(first[i]!), s(trips[i]!), s(v.paired), s(v.emitted)];
      console.log(`${v.label}:`);
      console.log(
        `  added: first content p50 ${ms(f.p50 - d.p50)} ms, p95 ${ms(f.p95 - d.p95)}, p99 ${ms(f.p99 - d.p99)}; tool round trip p50 ${ms(t.p50 - e.p50)} ms, p95 ${ms(t.p95 - e.p95)}, p99 ${ms(t.p99 - e.p99)}; targets ≤ 5 ms at p50`,
      );
      console.log(
        `  each round trip minus its own execute: p50 ${ms(pt.p50)} ms, p95 ${ms(pt.p95)}, p99 ${ms(pt.p99)}; of which the AI SDK alone ${ms(pk.p50)} ms at p50, Director around it ${ms(pt.p50 - pk.p50)} ms`,
      );
      console.log(`  first content: the AI SDK alone adds ${ms(k.p50 - d.p50)} ms at p50, Director around it ${ms(f.p50 - k.p50)} ms`);
      console.log(
        `  first content emitted by Director (its frame written) at p50 ${ms(em.p50 - d.p50)} ms after the provider's own first chunk; the client (another process) read it ${ms(f.p50 - em.p50)} ms later`,
      );
    });
  } finally {
    await client.close();
    for (const api of servers) await api.close();
    await llm.close();
  }
}

export async function benchChat(): Promise<void> {
  for (const kind of FORMATS) await benchFormat(kind);
}
