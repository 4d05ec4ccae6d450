/**
 * Chat against the real server and the real engine, with a local provider speaking `kind`'s wire
 * format (chat-openai.test.ts and chat-anthropic.test.ts run the same cases, one format each):
 * streaming, the tool round trip in the agent's sandbox, approvals at the sandbox boundary,
 * vault secrets, provider failures, resuming a stream, the WebSocket channel.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { call } from '../../helpers/api.ts';
import { startChatApi, contentOf, shapeOf, type ChatApi } from '../../helpers/chat.ts';
import type { FakeLlmKind } from '../../helpers/fake-llm.ts';
import { eventually, sleep } from '../../helpers/runtime.ts';
import { sse, type SseEvent } from '../../helpers/sse.ts';

interface AgentSandbox {
  id: string;
  sessionId: string;
  departmentId: string;
  status: string;
  labels: Record<string, string>;
  resourceLimits: { memory: number; pids: number };
}

export function chatCases(kind: FakeLlmKind): void {
  const test = suite(`chat (${kind})`);
  let c: ChatApi;

  test.before(async () => {
    c = await startChatApi(kind, { llmTimeoutMs: 4000 });
  });
  test.after(async () => {
    await c?.close();
  });

  /** The agent's sandbox, as the sandbox API shows it. */
  const sandboxOf = async (sessionId: string): Promise<AgentSandbox | null> => {
    const r = await c.get<{ items: AgentSandbox[] }>(`/v1/sandboxes?sessionId=${sessionId}`);
    return r.body.data.items.find((s) => s.labels['chat.agent']) ?? null;
  };
  /** A file of a sandbox through the files API (null when it does not exist). */
  const fileOf = async (sandboxId: string, path: string): Promise<string | null> => {
    const res = await fetch(`${c.api.url}/v1/sandboxes/${sandboxId}/files?path=${encodeURIComponent(path)}`, {
      headers: { authorization: `Bearer ${c.api.adminToken}` },
    });
    if (res.status === 404) return null;
    assert.is(res.status, 200, await res.clone().text());
    return res.text();
  };

  /** Every security event of the workspace, all pages. */
  const allEvents = async (): Promise<string> => {
    const pages: string[] = [];
    let after = '';
    for (;;) {
      const r = await c.get<{ items: unknown[]; nextCursor: string | null; hasMore: boolean }>(`/v1/security/events?limit=1000${after}`);
      pages.push(r.text);
      if (!r.body.data.hasMore || !r.body.data.nextCursor) return pages.join('\n');
      after = `&after=${r.body.data.nextCursor}`;
    }
  };

  test('a streamed answer arrives as content events then done, and is in the session messages', async () => {
    const { sessionId, agentId } = await c.agent({ systemPrompt: 'You are terse.' });
    c.llm.script([{ text: ['Hello', ', ', 'world'], usage: { input: 21, output: 4 } }]);
    const r = await c.chatSse({ agent: agentId, message: 'Say hello' });
    assert.is(r.status, 200, r.text);
    assert.equal(shapeOf(r), ['content', 'usage', 'done']);
    assert.is(contentOf(r), 'Hello, world');
    const ids = r.events.map((e) => e.id!);
    assert.ok(
      ids.every((id, i) => i === 0 || id > ids[i - 1]!),
      'SSE ids increase',
    );
    assert.is(r.headers.get('x-director-session-id'), sessionId);
    const done = r.events.at(-1)!.data;
    assert.equal([done.sessionId, done.response, (done.usage as { inputTokens: number }).inputTokens], [sessionId, 'Hello, world', 21]);
    const msgs = await c.get<{ items: { role: string; content: unknown }[] }>(`/v1/sessions/${sessionId}/messages`);
    assert.is(msgs.status, 200, msgs.text);
    assert.equal(
      msgs.body.data.items.map((m) => m.role),
      ['user', 'assistant'],
    );
    assert.match(JSON.stringify(msgs.body.data.items[1]!.content), /Hello, world/);
    // What the provider was sent: the system prompt and the message, in its own format.
    const sent = c.llm.requests.at(-1)!;
    assert.match(sent.path, kind === 'openai' ? /\/chat\/completions$/ : /\/messages$/);
    assert.match(sent.raw, /You are terse\./);
    assert.match(sent.raw, /Say hello/);
    assert.is(sent.body.stream, true);

    // JSON: the whole turn in one answer, and the history goes back to the model.
    c.llm.script([{ text: 'Again: hello' }]);
    const j = await c.post<{ sessionId: string; response: string; usage: { totalTokens: number } }>('/v1/chat', {
      agent: agentId,
      message: 'once more',
    });
    assert.is(j.status, 200, j.text);
    assert.equal([j.body.data.sessionId, j.body.data.response], [sessionId, 'Again: hello']);
    assert.ok(j.body.data.usage.totalTokens > 0);
    assert.match(c.llm.requests.at(-1)!.raw, /Hello, world/);
  });

  test("a tool round trip: the model asks execute, the command runs in the agent's sandbox, the model gets the output and answers", async () => {
    const { sessionId, departmentId, agentId } = await c.agent({ approvalPolicy: 'never' });
    c.llm.script([
      {
        text: 'Let me check.',
        toolCalls: [{ name: 'execute', input: { command: 'echo from-director > hello.txt && cat hello.txt && id -u' } }],
      },
      { text: 'The file says from-director.' },
    ]);
    const r = await c.chatSse({ agent: agentId, message: 'write hello.txt' });
    assert.equal(shapeOf(r), ['content', 'tool_start', 'tool_end', 'usage', 'content', 'usage', 'done']);
    const end = r.events.find((e) => e.event === 'tool_end')!.data;
    assert.is(end.status, 'ok');
    assert.is(end.exitCode, 0);
    const result = end.result as { stdout: string };
    assert.match(result.stdout, /^from-director\n1000\n$/, 'ran as the sandbox user');
    // The sandbox: the session's, the department's, with the file in its workspace.
    const sbx = await sandboxOf(sessionId);
    assert.ok(sbx, 'the agent got a sandbox');
    assert.equal([sbx.sessionId, sbx.departmentId, sbx.status, sbx.labels['chat.agent']], [sessionId, departmentId, 'running', agentId]);
    assert.is(end.sandboxId, sbx.id);
    assert.is(await fileOf(sbx.id, '/workspace/hello.txt'), 'from-director\n');
    // The model got the output in its next request, as a tool result of its own call.
    assert.match(c.llm.requests.at(-1)!.raw, /from-director/);
    assert.match(c.llm.requests.at(-1)!.raw, kind === 'openai' ? /"role":"tool"/ : /"tool_result"/);
    // The next turn reuses the same sandbox; the tool call counts as a task of the session.
    c.llm.script([{ toolCalls: [{ name: 'read_file', input: { path: 'hello.txt' } }] }, { text: 'read it' }]);
    const again = await c.chatSse({ agent: agentId, message: 'read it back' });
    assert.is((again.events.find((e) => e.event === 'tool_end')!.data.result as { content: string }).content, 'from-director\n');
    assert.is((await sandboxOf(sessionId))!.id, sbx.id);
    const session = await c.get<{ metrics: { totalTasks: number } }>(`/v1/sessions/${sessionId}`);
    assert.is(session.body.data.metrics.totalTasks, 2);
  });

  test("the agent's sandbox lives under its department's limits", async () => {
    const s = await c.post<{ id: string }>('/v1/sessions', { name: 'limits' });
    const d = await c.post<{ id: string }>('/v1/departments', {
      sessionId: s.body.data.id,
      name: 'small',
      domain: 'tests',
      config: { resourceLimits: { memory: 96, pids: 64 } },
    });
    const a = await c.post<{ id: string }>('/v1/agents', { departmentId: d.body.data.id, name: 'tiny', approvalPolicy: 'never' });
    c.llm.script([
      { toolCalls: [{ name: 'execute', input: { command: 'cat /sys/fs/cgroup/pids.max 2>/dev/null || echo none' } }] },
      { text: 'ok' },
    ]);
    await c.chatSse({ agent: a.body.data.id, message: 'limits?' });
    const sbx = await sandboxOf(s.body.data.id);
    assert.equal([sbx!.resourceLimits.memory, sbx!.resourceLimits.pids], [96, 64]);
  });

  /** Runs a turn whose model asks for `command`; `decide` answers the approval when it arrives. */
  const withApproval = async (agentId: string, command: string, decide: (approvalId: string) => Promise<unknown>) => {
    c.llm.script([{ toolCalls: [{ name: 'execute', input: { command } }] }, { text: 'noted' }]);
    return c.chatSse(
      { agent: agentId, message: `please run ${command}` },
      {
        onEvent: async (e: SseEvent) => {
          if (e.event === 'tool_approval') await decide(String(e.data.approvalId));
        },
      },
    );
  };

  test('approval required: tool_approval; deny → the command never ran; approve → it ran; auto-approve → no prompt the second time', async () => {
    const { sessionId, agentId } = await c.agent();
    const denied = await withApproval(agentId, 'touch /workspace/denied.txt', (id) =>
      c.post(`/v1/approvals/${id}/deny`, { reason: 'not today' }),
    );
    assert.equal(shapeOf(denied), ['tool_start', 'tool_approval', 'tool_end', 'usage', 'content', 'usage', 'done']);
    const approval = denied.events.find((e) => e.event === 'tool_approval')!.data;
    assert.match(String(approval.inputHash), /^sha256:/);
    assert.equal(approval.input, { command: 'touch /workspace/denied.txt' });
    assert.is(denied.events.find((e) => e.event === 'tool_end')!.data.status, 'denied');
    assert.match(c.llm.requests.at(-1)!.raw, /not run: denied by .*not today/);
    const listed = await c.get<{ items: { status: string; decidedBy: string }[] }>(`/v1/approvals?sessionId=${sessionId}`);
    assert.equal(
      listed.body.data.items.map((a) => a.status),
      ['denied'],
    );
    // Denied before anything ran: the sandbox was never even needed.
    assert.is(await sandboxOf(sessionId), null);

    const approved = await withApproval(agentId, 'touch /workspace/approved.txt', (id) => c.post(`/v1/approvals/${id}/approve`));
    assert.is(approved.events.find((e) => e.event === 'tool_end')!.data.status, 'ok');
    const sbx = (await sandboxOf(sessionId))!;
    assert.is(await fileOf(sbx.id, '/workspace/approved.txt'), '');
    assert.is(await fileOf(sbx.id, '/workspace/denied.txt'), null, 'the denied command never ran');

    const auto = await withApproval(agentId, 'touch /workspace/auto1.txt', (id) =>
      c.post(`/v1/approvals/${id}/approve?auto_approve=session`),
    );
    assert.ok(auto.events.some((e) => e.event === 'tool_approval'));
    const second = await withApproval(agentId, 'touch /workspace/auto2.txt', () => {
      assert.unreachable('no prompt the second time');
      return Promise.resolve();
    });
    assert.not.ok(second.events.some((e) => e.event === 'tool_approval'));
    assert.is(await fileOf(sbx.id, '/workspace/auto2.txt'), '');
    const rules = await c.get<{ items: { scope: string; tool: string }[] }>(`/v1/auto-approve?agent=${agentId}`);
    assert.equal(
      rules.body.data.items.map((r) => [r.scope, r.tool]),
      [['session', 'execute']],
    );
    // A decided approval cannot be decided again.
    const first = (await c.get<{ items: { id: string }[] }>(`/v1/approvals?sessionId=${sessionId}&status=denied`)).body.data.items[0]!;
    assert.is((await c.post(`/v1/approvals/${first.id}/approve`)).status, 409);
  });

  test('a superseding message denies the waiting call; the command never ran', async () => {
    const { sessionId, agentId } = await c.agent();
    let firstTurnCall = true;
    c.llm.script((req) => {
      if (firstTurnCall && req.raw.includes('drop the database')) {
        firstTurnCall = false;
        return { toolCalls: [{ name: 'execute', input: { command: 'touch /workspace/dropped.txt' } }] };
      }
      return { text: req.raw.includes('never mind') ? 'Understood, stopping.' : 'ok' };
    });
    const first = sse(c.api.url, '/v1/chat', {
      token: c.api.adminToken,
      body: { agent: agentId, message: 'drop the database' },
    });
    await eventually(async () => {
      const p = await c.get<{ items: { status: string }[] }>(`/v1/approvals?sessionId=${sessionId}&status=pending`);
      return p.body.data.items.length === 1;
    });
    const second = await c.chatSse({ agent: agentId, message: 'never mind' });
    assert.is(second.status, 200, second.text);
    assert.is(contentOf(second), 'Understood, stopping.');
    const firstDone = await first;
    assert.is(firstDone.events.find((e) => e.event === 'tool_end')!.data.status, 'denied');
    assert.is(firstDone.events.at(-1)!.data.reason, 'superseded');
    const all = await c.get<{ items: { status: string }[] }>(`/v1/approvals?sessionId=${sessionId}`);
    assert.equal(
      all.body.data.items.map((a) => a.status),
      ['superseded'],
    );
    assert.is(await sandboxOf(sessionId), null, 'nothing ran, so no sandbox was made');
  });

  test('one turn at a time: a second message while a turn runs is refused with 409', async () => {
    const { agentId } = await c.agent();
    c.llm.script([{ text: ['slow', ' answer', ' here'], chunkDelayMs: 400 }]);
    const first = c.chatSse({ agent: agentId, message: 'take your time' });
    await sleep(300);
    const second = await c.post('/v1/chat', { agent: agentId, message: 'me too' });
    assert.is(second.status, 409, second.text);
    assert.is(second.body.error?.code, 'CONFLICT');
    assert.is(contentOf(await first), 'slow answer here');
  });

  test('a vault secret used by a tool never appears in messages, events, logs or the model input', async () => {
    const SECRET = `dk-live-${Math.random().toString(36).slice(2)}-7f3a9c`;
    const stored = await c.post<{ id: string }>('/v1/vault', { name: 'DEPLOY_KEY', value: SECRET, description: 'deploys' });
    assert.is(stored.status, 201, stored.text);
    assert.not.match(stored.text, SECRET);
    const { sessionId, agentId } = await c.agent({ approvalPolicy: 'never', secrets: { DEPLOY_KEY: stored.body.data.id } });
    c.llm.script([
      {
        toolCalls: [
          {
            name: 'execute',
            input: { command: 'printf %s "$DEPLOY_KEY" > key.txt; echo "key=$DEPLOY_KEY"; printf %s "$DEPLOY_KEY" | base64' },
          },
        ],
      },
      { toolCalls: [{ name: 'read_file', input: { path: 'key.txt' } }] },
      { text: 'deployed' },
    ]);
    const r = await c.chatSse({ agent: agentId, message: 'deploy' });
    assert.is(r.events.at(-1)!.event, 'done', JSON.stringify(r.events.at(-1)));
    // The tool did get it: the sandbox holds the value.
    const sbx = (await sandboxOf(sessionId))!;
    assert.is(await fileOf(sbx.id, '/workspace/key.txt'), SECRET);
    const b64 = Buffer.from(SECRET).toString('base64').replace(/=+$/, '');
    const places: Record<string, string> = {
      'model input': c.llm.everything(),
      stream: JSON.stringify(r.events),
      messages: (await c.get(`/v1/sessions/${sessionId}/messages?limit=500`)).text,
      events: await allEvents(),
      'agent events': (await c.get(`/v1/agents/${agentId}/events`)).text,
      logs: c.logs(),
      vault: (await c.get('/v1/vault')).text,
    };
    for (const [where, text] of Object.entries(places)) {
      assert.not.match(text, SECRET, `the secret is in ${where}`);
      assert.not.match(text, b64, `the secret (base64) is in ${where}`);
    }
    assert.match(places['model input']!, /\[redacted:DEPLOY_KEY\]/);
    assert.ok(c.logs().length > 1000, 'the logs were captured');
  });

  test('no provider → 503 naming the settings; nothing is sent anywhere', async () => {
    const bare = await startChatApi(kind, { llmProvider: '' });
    try {
      const { agentId } = await bare.agent();
      for (const accept of ['application/json', 'text/event-stream']) {
        const r = await bare.post('/v1/chat', { agent: agentId, message: 'hi' }, { accept });
        assert.is(r.status, 503, r.text);
        assert.is(r.body.error?.code, 'SERVICE_UNAVAILABLE');
        for (const s of ['DIRECTOR_LLM_PROVIDER', 'DIRECTOR_LLM_BASE_URL', 'DIRECTOR_LLM_API_KEY', 'DIRECTOR_LLM_MODEL']) {
          assert.match(r.body.error!.message, s);
        }
      }
      assert.is(bare.llm.requests.length, 0);
    } finally {
      await bare.close();
    }
  });

  test('provider down or slow → an error event and a clean end; the server keeps serving', async () => {
    const { agentId } = await c.agent();
    c.llm.script([{ status: 503 }]);
    const down = await c.chatSse({ agent: agentId, message: 'hi' });
    assert.equal(shapeOf(down), ['error']);
    assert.is(down.events[0]!.data.code, 'PROVIDER_ERROR');
    assert.ok(down.ended, 'the stream ended');
    c.llm.script([{ status: 500 }]);
    const json = await c.post('/v1/chat', { agent: agentId, message: 'hi' });
    assert.is(json.status, 503, json.text);
    assert.is(json.body.error?.details.reason, 'provider_error');

    c.llm.script([{ hang: true }]);
    const started = Date.now();
    const slow = await c.chatSse({ agent: agentId, message: 'hi' });
    assert.equal(shapeOf(slow), ['error']);
    assert.is(slow.events[0]!.data.code, 'PROVIDER_TIMEOUT');
    assert.ok(Date.now() - started >= 3500, 'after DIRECTOR_LLM_TIMEOUT_MS');

    c.llm.script([{ text: 'I am back' }]);
    const ok = await c.chatSse({ agent: agentId, message: 'hi again' });
    assert.is(contentOf(ok), 'I am back');
    assert.is((await call(c.api.url, 'GET', '/health')).status, 200);
  });

  test('a dropped client does not stop the turn; Last-Event-ID resumes exactly after the last event seen', async () => {
    const { sessionId, agentId } = await c.agent();
    c.llm.script([{ text: ['one ', 'two ', 'three ', 'four'], chunkDelayMs: 150 }]);
    const partial = await c.chatSse({ agent: agentId, message: 'count' }, { until: (e) => e.event === 'content' });
    assert.not.ok(partial.ended);
    const last = partial.events.at(-1)!.id!;
    const rest = await sse(c.api.url, `/v1/chat/${sessionId}/events`, {
      token: c.api.adminToken,
      headers: { 'last-event-id': String(last) },
    });
    assert.is(rest.status, 200, rest.text);
    assert.ok(
      rest.events.every((e) => e.id! > last),
      'nothing repeated',
    );
    assert.is(contentOf(partial) + contentOf(rest), 'one two three four');
    assert.is(rest.events.at(-1)!.event, 'done');
    // Afterwards the whole turn can be replayed; the messages hold it.
    const replay = await sse(c.api.url, `/v1/chat/${sessionId}/events?after=0`, { token: c.api.adminToken });
    assert.is(contentOf(replay), 'one two three four');
    const bad = await sse(c.api.url, `/v1/chat/${sessionId}/events`, { token: c.api.adminToken, headers: { 'last-event-id': 'x' } });
    assert.is(bad.status, 400);
    // A second turn: X-Director-Turn-After names where its events start, so a client that got none
    // of them resumes there instead of replaying the first turn (whose `done` would end its stream).
    c.llm.script([{ text: ['five ', 'six'], chunkDelayMs: 150 }]);
    const second = await c.chatSse({ agent: agentId, message: 'more', sessionId }, { until: (e) => e.event === 'content' });
    const turnAfter = Number(second.headers.get('x-director-turn-after'));
    assert.ok(turnAfter >= replay.events.at(-1)!.id!, "after the first turn's events");
    assert.ok(second.events[0]!.id! > turnAfter, "the turn's first event comes after it");
    const fromStart = await sse(c.api.url, `/v1/chat/${sessionId}/events`, {
      token: c.api.adminToken,
      headers: { 'last-event-id': String(turnAfter) },
    });
    assert.is(contentOf(fromStart), 'five six');
    assert.is(fromStart.events.filter((e) => e.event === 'done').length, 1);
  });

  test('the same events over the WebSocket hub (channel chat, filtered by session), and in the agent ring buffer', async () => {
    const { sessionId, agentId } = await c.agent({ approvalPolicy: 'never' });
    const ws = new WebSocket(`${c.api.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${c.api.adminToken}` } });
    const got: { type: string; data: Record<string, unknown>; cursor: number }[] = [];
    let subscribed = false;
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { type: string; channel?: string; data: Record<string, unknown>; cursor: number };
      if (m.type === 'subscribed' && m.channel === 'chat') subscribed = true;
      if (m.type.startsWith('chat_') && m.data.sessionId === sessionId) got.push(m);
    });
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'chat' }));
    await eventually(() => subscribed);
    c.llm.script([{ toolCalls: [{ name: 'list_files', input: {} }] }, { text: 'listed' }]);
    const r = await c.chatSse({ agent: agentId, message: 'ls' });
    await eventually(() => got.some((m) => m.type === 'chat_done'));
    ws.close();
    assert.equal(
      got.map((m) => m.type.slice(5)),
      r.events.map((e) => e.event),
    );
    assert.equal(
      got.map((m) => m.cursor),
      r.events.map((e) => e.id),
    );
    const ring = await c.get<{ events: { type: string; seq: number }[] }>(`/v1/agents/${agentId}/events?after=0`);
    const types = ring.body.data.events.map((e) => e.type);
    assert.equal(types.slice(0, 2), ['turn_started', 'tool_start']);
    assert.ok(types.includes('tool_end') && types.includes('message') && types.at(-1) === 'done', types.join(','));
    const later = await c.get<{ events: unknown[]; cursor: number }>(
      `/v1/agents/${agentId}/events?after=${ring.body.data.events.at(-1)!.seq}`,
    );
    assert.equal(later.body.data.events, []);
    const stats = await c.get<{ turns: { total: number }; toolCalls: { byTool: Record<string, number> }; cost: null }>(
      `/v1/sessions/${sessionId}/stats`,
    );
    assert.equal([stats.body.data.turns.total, stats.body.data.toolCalls.byTool.list_files, stats.body.data.cost], [1, 1, null]);
  });

  test.run();
}
