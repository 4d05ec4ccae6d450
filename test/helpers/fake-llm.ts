/**
 * A local stand-in for an LLM provider, listening on loopback only and speaking the provider's
 * REAL streaming wire format, scripted per test, recording every request it was sent (so a test
 * can prove what reached "the model"):
 *
 * - `openai`: OpenAI chat completions (`POST {base}/chat/completions`, `stream: true`): SSE lines
 *   `data: {chat.completion.chunk}` with `choices[0].delta` carrying `content`,
 *   `reasoning_content` or `tool_calls` deltas (id, type and name in the first delta of a call,
 *   then `function.arguments` in pieces), a final chunk with `finish_reason`, a usage-only chunk
 *   (`choices: []`, as `stream_options.include_usage` asks) and `data: [DONE]`.
 * - `anthropic`: the Messages API (`POST {base}/messages`, `stream: true`): named SSE events
 *   `message_start`, `content_block_start` / `content_block_delta` (`text_delta`,
 *   `thinking_delta` + `signature_delta`, `input_json_delta`) / `content_block_stop`, `ping`,
 *   `message_delta` (stop reason and output usage) and `message_stop`.
 *
 * A reply is data ({@link Reply}); `hang` accepts the request and never answers (a slow provider),
 * `status` answers an HTTP error in the provider's error shape.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeLlmKind = 'openai' | 'anthropic';

export interface ToolCallReply {
  /** Default `call_<n>` (OpenAI) / `toolu_<n>` (Anthropic). */
  id?: string;
  name: string;
  /** An object is JSON-encoded; a string is sent as the raw arguments text (to send invalid JSON). */
  input: unknown;
}

export interface Reply {
  /** Content: one delta per array item (a string is split in two deltas). */
  text?: string | string[];
  /** Reasoning / thinking deltas, before the text. */
  reasoning?: string | string[];
  toolCalls?: ToolCallReply[];
  usage?: { input: number; output: number };
  /** Provider finish reason; default `tool_calls`/`tool_use` when there are tool calls, else `stop`/`end_turn`. */
  finish?: string;
  /** Answer this HTTP status with the provider's error body instead of a stream. */
  status?: number;
  /** Accept the request and never answer. */
  hang?: boolean;
  /** Wait between streamed chunks, ms. */
  chunkDelayMs?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The raw body as received. */
  raw: string;
  body: Record<string, unknown>;
  /** `performance.now()` when the whole request had arrived, and when the response was complete (NaN until then). */
  receivedAt: number;
  respondedAt: number;
}

export type ReplyFn = (req: RecordedRequest, index: number) => Reply | Promise<Reply>;

export interface FakeLlm extends AsyncDisposable {
  kind: FakeLlmKind;
  /** What to configure as the provider's base URL (`http://127.0.0.1:port/v1`). */
  baseUrl: string;
  requests: RecordedRequest[];
  /**
   * Replies served in order from the next request on (the last one repeats), or a function of the
   * request and its index counted from the same point: each call starts the script over, so a
   * test's replies do not depend on how many requests earlier tests on the same server made.
   */
  script(replies: Reply[] | ReplyFn): void;
  /** Everything any request carried (raw bodies and header values), for "never reached the model" checks. */
  everything(): string;
  close(): Promise<void>;
}

const splitText = (t: string | string[] | undefined): string[] =>
  t === undefined
    ? []
    : Array.isArray(t)
      ? t
      : t.length > 1
        ? [t.slice(0, Math.ceil(t.length / 2)), t.slice(Math.ceil(t.length / 2))]
        : [t];

const argsText = (input: unknown): string => (typeof input === 'string' ? input : JSON.stringify(input));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeLlm(kind: FakeLlmKind): Promise<FakeLlm> {
  const requests: RecordedRequest[] = [];
  let replies: Reply[] | ReplyFn = [{ text: 'ok' }];
  /** How many requests had arrived when the current script was set: its replies count from there. */
  let scriptedAt = 0;
  const open = new Set<ServerResponse>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          // recorded as is
        }
        const rec: RecordedRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          raw,
          body,
          receivedAt: performance.now(),
          respondedAt: Number.NaN,
        };
        const index = requests.length;
        requests.push(rec);
        const nth = index - scriptedAt;
        const reply = typeof replies === 'function' ? await replies(rec, nth) : (replies[Math.min(nth, replies.length - 1)] ?? {});
        open.add(res);
        res.once('finish', () => (rec.respondedAt = performance.now()));
        res.once('close', () => open.delete(res));
        await (kind === 'openai' ? serveOpenAi(res, reply, index) : serveAnthropic(res, reply, index));
      })().catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = async () => {
    for (const r of open) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    kind,
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    script(r) {
      replies = r;
      scriptedAt = requests.length;
    },
    everything: () => requests.map((r) => `${JSON.stringify(r.headers)}\n${r.raw}`).join('\n'),
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function serveOpenAi(res: ServerResponse, r: Reply, index: number): Promise<void> {
  if (r.hang) return;
  if (r.status) {
    res.writeHead(r.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `scripted failure ${r.status}`, type: 'server_error', param: null, code: null } }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const id = `chatcmpl-${index}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model: 'fake-model',
      system_fingerprint: 'fp_fake',
      choices: choice ? [{ index: 0, logprobs: null, finish_reason: null, ...choice }] : [],
      ...extra,
    })}\n\n`;
  const send = async (s: string) => {
    res.write(s);
    if (r.chunkDelayMs) await sleep(r.chunkDelayMs);
  };
  await send(chunk({ delta: { role: 'assistant', content: '' } }));
  for (const t of splitText(r.reasoning)) await send(chunk({ delta: { reasoning_content: t } }));
  for (const t of splitText(r.text)) await send(chunk({ delta: { content: t } }));
  for (const [i, call] of (r.toolCalls ?? []).entries()) {
    const args = argsText(call.input);
    const cut = Math.ceil(args.length / 2);
    await send(
      chunk({
        delta: {
          tool_calls: [{ index: i, id: call.id ?? `call_${index}_${i}`, type: 'function', function: { name: call.name, arguments: '' } }],
        },
      }),
    );
    for (const piece of [args.slice(0, cut), args.slice(cut)]) {
      if (piece) await send(chunk({ delta: { tool_calls: [{ index: i, function: { arguments: piece } }] } }));
    }
  }
  const finish = r.finish ?? (r.toolCalls?.length ? 'tool_calls' : 'stop');
  await send(chunk({ delta: {}, finish_reason: finish }));
  const usage = r.usage ?? { input: 10, output: 5 };
  await send(
    chunk(null, { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } }),
  );
  res.end('data: [DONE]\n\n');
}

async function serveAnthropic(res: ServerResponse, r: Reply, index: number): Promise<void> {
  if (r.hang) return;
  if (r.status) {
    res.writeHead(r.status, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        type: 'error',
        error: { type: r.status === 529 ? 'overloaded_error' : 'api_error', message: `scripted failure ${r.status}` },
      }),
    );
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = async (event: string, data: Record<string, unknown>) => {
    res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
    if (r.chunkDelayMs) await sleep(r.chunkDelayMs);
  };
  const usage = r.usage ?? { input: 10, output: 5 };
  await send('message_start', {
    message: {
      id: `msg_fake_${index}`,
      type: 'message',
      role: 'assistant',
      model: 'fake-model',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: usage.input, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    },
  });
  let block = 0;
  const reasoning = splitText(r.reasoning);
  if (reasoning.length) {
    await send('content_block_start', { index: block, content_block: { type: 'thinking', thinking: '' } });
    for (const t of reasoning) await send('content_block_delta', { index: block, delta: { type: 'thinking_delta', thinking: t } });
    await send('content_block_delta', { index: block, delta: { type: 'signature_delta', signature: 'c2lnbmF0dXJl' } });
    await send('content_block_stop', { index: block });
    block++;
  }
  const text = splitText(r.text);
  if (text.length) {
    await send('content_block_start', { index: block, content_block: { type: 'text', text: '' } });
    await send('ping', {});
    for (const t of text) await send('content_block_delta', { index: block, delta: { type: 'text_delta', text: t } });
    await send('content_block_stop', { index: block });
    block++;
  }
  for (const [i, call] of (r.toolCalls ?? []).entries()) {
    const args = argsText(call.input);
    const cut = Math.ceil(args.length / 2);
    await send('content_block_start', {
      index: block,
      content_block: { type: 'tool_use', id: call.id ?? `toolu_${index}_${i}`, name: call.name, input: {} },
    });
    for (const piece of [args.slice(0, cut), args.slice(cut)]) {
      if (piece) await send('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: piece } });
    }
    await send('content_block_stop', { index: block });
    block++;
  }
  const finish = r.finish ?? (r.toolCalls?.length ? 'tool_use' : 'end_turn');
  await send('message_delta', { delta: { stop_reason: finish, stop_sequence: null }, usage: { output_tokens: usage.output } });
  await send('message_stop', {});
  res.end();
}
