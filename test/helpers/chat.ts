/**
 * A Director server wired to a local fake LLM provider (test/helpers/fake-llm.ts) for chat
 * tests, with helpers for the session → department → agent setup and for chatting.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import * as assert from 'uvu/assert';
import type { Config } from '../../runtime/config.ts';
import { call, startApi, type TestApi } from './api.ts';
import { startFakeLlm, type FakeLlm, type FakeLlmKind } from './fake-llm.ts';
import { sse, type SseOptions, type SseResult } from './sse.ts';

export interface ChatApi extends AsyncDisposable {
  api: TestApi;
  llm: FakeLlm;
  /** Every log line the server wrote (runtime, orchestration and HTTP), at trace level. */
  logs(): string;
  post<T = Record<string, unknown>>(
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{
    status: number;
    body: { data: T; error?: { code: string; message: string; details: Record<string, unknown> } };
    text: string;
  }>;
  get<T = Record<string, unknown>>(
    path: string,
  ): Promise<{
    status: number;
    body: { data: T; error?: { code: string; message: string; details: Record<string, unknown> } };
    text: string;
  }>;
  /** A session, a department in it and an agent of that department; returns their ids. */
  agent(
    body?: Record<string, unknown>,
    session?: Record<string, unknown>,
  ): Promise<{ sessionId: string; departmentId: string; agentId: string }>;
  /** `POST /v1/chat` as SSE. */
  chatSse(body: Record<string, unknown>, opts?: Omit<SseOptions, 'body' | 'token'>): Promise<SseResult>;
  close(): Promise<void>;
}

export async function startChatApi(kind: FakeLlmKind, overrides: Partial<Config> = {}): Promise<ChatApi> {
  const llm = await startFakeLlm(kind);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'trace' }, sink);
  const api = await startApi(
    {
      rateLimitSandbox: 10_000,
      rateLimitSession: 10_000,
      rateLimitAuth: 1000,
      llmProvider: kind === 'openai' ? 'openai-compatible' : 'anthropic',
      llmBaseUrl: llm.baseUrl,
      llmApiKey: 'test-provider-key-0123456789',
      llmModel: kind === 'openai' ? 'fake-gpt' : 'claude-fake',
      llmMaxRetries: 0,
      ...overrides,
    },
    { logger, httpLogger: { level: 'trace', stream: sink } },
  );
  const token = api.adminToken;
  const post = (path: string, body?: unknown, headers?: Record<string, string>) =>
    call(api.url, 'POST', path, { token, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) });
  const get = (path: string) => call(api.url, 'GET', path, { token });
  const close = async () => {
    await api.close();
    await llm.close();
  };
  return {
    api,
    llm,
    logs: () => lines.join(''),
    post: post as ChatApi['post'],
    get: get as ChatApi['get'],
    async agent(body = {}, sessionBody = {}) {
      const s = await post('/v1/sessions', { name: 'chat', ...sessionBody });
      assert.is(s.status, 201, s.text);
      const sessionId = (s.body.data as { id: string }).id;
      const d = await post('/v1/departments', { sessionId, name: 'eng', domain: 'code-generation' });
      assert.is(d.status, 201, d.text);
      const departmentId = (d.body.data as { id: string }).id;
      const a = await post('/v1/agents', { departmentId, name: 'coder', ...body });
      assert.is(a.status, 201, a.text);
      return { sessionId, departmentId, agentId: (a.body.data as { id: string }).id };
    },
    chatSse: (body, opts = {}) => sse(api.url, '/v1/chat', { ...opts, token, body }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The text of a stream's `content` events. */
export const contentOf = (r: SseResult): string =>
  r.events
    .filter((e) => e.event === 'content')
    .map((e) => String(e.data.text))
    .join('');

/** Event names in order, consecutive duplicates collapsed (`content` × n → one). */
export const shapeOf = (r: SseResult): string[] => r.events.map((e) => e.event).filter((t, i, all) => i === 0 || all[i - 1] !== t);
