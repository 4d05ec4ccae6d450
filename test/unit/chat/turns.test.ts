/**
 * Chat turns end to end over the fake provider (both wire formats) and a fake sandbox: streaming,
 * the tool loop, approvals, one turn at a time, budgets, invalid calls, provider failures and
 * cancellation. The same behaviours against the real engine are in test/integration/chat/.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { AI_SDK_TELEMETRY_TRACING_CHANNEL } from 'ai';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChatEvent } from '../../../orchestration/chat/events.ts';
import { caller, harness, shape, type Harness } from './support.ts';

for (const kind of ['openai', 'anthropic'] as const) {
  const test = suite(`chat turns (${kind})`);
  let h: Harness;
  test.before.each(async () => {
    h = await harness(kind);
  });
  test.after.each(async () => {
    await h.close();
  });

  const run = async (agentId: string, message: string) => {
    const t = h.chat.service.send(caller, { agent: agentId, message });
    const [events, result] = await Promise.all([h.turnEvents(t.id, t.sessionId, t.fromSeq), t.finished]);
    return { t, events, result };
  };

  test('a streamed answer: content deltas, usage, done; the turn is in the session messages', async () => {
    const { agentId, sessionId } = await h.agent({ systemPrompt: 'Be brief.' });
    h.llm.script([{ reasoning: 'think', text: ['Hel', 'lo ', 'there'], usage: { input: 12, output: 3 } }]);
    const { events, result } = await run(agentId, 'hi');
    assert.equal(shape(events), ['thinking', 'content', 'usage', 'done']);
    assert.is(result.response, 'Hello there');
    assert.equal([result.usage.inputTokens, result.usage.outputTokens], [12, 3]);
    const msgs = h.chat.service.messages(caller, sessionId, { limit: 10, offset: 0 }).items;
    assert.equal(
      msgs.map((m) => m.role),
      ['user', 'assistant'],
    );
    const body = JSON.stringify(h.llm.requests[0]!.body);
    assert.match(body, /Be brief\./);
    assert.match(body, /"hi"/);
  });

  test('a tool round trip: the model calls execute, the sandbox runs it, the model gets the output and answers', async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never' });
    h.llm.script([{ text: 'Running.', toolCalls: [{ name: 'execute', input: { command: 'echo hi' } }] }, { text: 'It printed hi.' }]);
    const { events, result } = await run(agentId, 'run echo');
    assert.equal(shape(events), ['content', 'tool_start', 'tool_end:ok', 'usage', 'content', 'usage', 'done']);
    assert.equal(
      h.ran.map((r) => r.command),
      ['echo hi'],
    );
    assert.match(JSON.stringify(h.llm.requests[1]!.body), /ran: echo hi/);
    assert.is(result.steps, 2);
    const end = events.find((e) => e.type === 'tool_end')!;
    assert.is(end.data.exitCode, 0);
  });

  test('maxHistoryMessages: each model call gets the newest messages from a user message on; all stay stored', async () => {
    const { agentId, sessionId } = await h.agent({ approvalPolicy: 'never', maxHistoryMessages: 3 });
    h.llm.script([{ text: 'first answer' }]);
    await run(agentId, 'first question');
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo hi' } }] }, { text: 'second answer' }]);
    await run(agentId, 'second question');
    // The second turn's first call: [q1, a1, q2] fits 3.
    assert.match(JSON.stringify(h.llm.requests[1]!.body), /first question/);
    // Its second call would be [q1, a1, q2, call, result]: the newest 3 start at the call, so from q2 on.
    const second = JSON.stringify(h.llm.requests[2]!.body);
    assert.not.match(second, /first question/);
    assert.match(second, /second question/);
    assert.match(second, /ran: echo hi/);
    h.llm.script([{ text: 'third answer' }]);
    await run(agentId, 'third question');
    const third = JSON.stringify(h.llm.requests[3]!.body);
    assert.not.match(third, /second question|first question/);
    assert.match(third, /third question/);
    const stored = h.chat.service.messages(caller, sessionId, { limit: 50, offset: 0 }).items;
    assert.is(stored.length, 8, 'every message is still stored');
  });

  test("a turn publishes nothing on the AI SDK's telemetry channel (its events carry the conversation)", async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never' });
    const seen: unknown[] = [];
    const channel = tracingChannel(AI_SDK_TELEMETRY_TRACING_CHANNEL);
    const handlers = { start: (m: unknown) => seen.push(m), end: () => {}, asyncStart: () => {}, asyncEnd: () => {}, error: () => {} };
    channel.subscribe(handlers);
    try {
      h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo hi' } }] }, { text: 'done' }]);
      const { result } = await run(agentId, 'run echo');
      assert.is(result.steps, 2);
    } finally {
      channel.unsubscribe(handlers);
    }
    assert.is(seen.length, 0);
  });

  test('approval required: tool_approval, then deny: it never ran and the model was told', async () => {
    const { agentId } = await h.agent();
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'rm -rf /workspace' } }] }, { text: 'OK, I will not.' }]);
    const t = h.chat.service.send(caller, { agent: agentId, message: 'clean up' });
    const events: ChatEvent[] = [];
    for await (const e of h.chat.service.follow(caller, t.sessionId, t.fromSeq, { turnId: t.id })) {
      events.push(e);
      if (e.type === 'tool_approval') h.chat.approvals.deny(caller, String(e.data.approvalId), { reason: 'too risky' });
    }
    assert.equal(shape(events), ['tool_start', 'tool_approval', 'tool_end:denied', 'usage', 'content', 'usage', 'done']);
    assert.equal(h.ran, []);
    assert.match(JSON.stringify(h.llm.requests[1]!.body), /not run: denied by usr_alice: too risky/);
    await t.finished;
  });

  test('approve: it runs; approve with auto_approve=session: no prompt the second time', async () => {
    const { agentId } = await h.agent();
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'make' } }] }, { text: 'built' }]);
    const t = h.chat.service.send(caller, { agent: agentId, message: 'build' });
    for await (const e of h.chat.service.follow(caller, t.sessionId, t.fromSeq, { turnId: t.id })) {
      if (e.type === 'tool_approval') h.chat.approvals.approve(caller, String(e.data.approvalId), { autoApprove: 'session' });
    }
    assert.is(h.ran.length, 1);
    h.llm.requests.length = 0;
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'make test' } }] }, { text: 'tested' }]);
    const second = await run(agentId, 'test');
    assert.not.ok(
      second.events.some((e) => e.type === 'tool_approval'),
      'no prompt the second time',
    );
    assert.is(h.ran.length, 2);
  });

  test('a new message while a call waits for approval supersedes it: denied, and the new turn runs after', async () => {
    const { agentId, sessionId } = await h.agent();
    h.llm.script((req, i) =>
      i === 0 ? { toolCalls: [{ name: 'execute', input: { command: 'deploy' } }] } : { text: i === 1 ? 'never mind' : 'next answer' },
    );
    const first = h.chat.service.send(caller, { agent: agentId, message: 'deploy' });
    const firstEvents: ChatEvent[] = [];
    for await (const e of h.chat.service.follow(caller, sessionId, first.fromSeq, { turnId: first.id })) {
      firstEvents.push(e);
      if (e.type === 'tool_approval') break;
    }
    const second = h.chat.service.send(caller, { agent: agentId, message: 'actually, stop' });
    const r1 = await first.finished;
    const r2 = await second.finished;
    assert.is(r1.reason, 'superseded');
    assert.is(r2.status, 'completed');
    assert.equal(h.ran, [], 'the superseded call never ran');
    const approval = h.chat.approvals.list(caller, { sessionId, limit: 10, offset: 0 }).items[0]!;
    assert.is(approval.status, 'superseded');
    // History stays valid: the denied call's result sits before the new user message.
    const roles = h.chat.service.messages(caller, sessionId, { limit: 20, offset: 0 }).items.map((m) => m.role);
    assert.equal(roles, ['user', 'assistant', 'tool', 'user', 'assistant']);
  });

  test('one turn at a time: a message while a turn runs (not waiting for approval) is refused with 409', async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never' });
    h.answer = (command) => ({ exitCode: 0, stdout: command, delayMs: 300 });
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'sleep' } }] }, { text: 'done' }]);
    const t = h.chat.service.send(caller, { agent: agentId, message: 'slow' });
    await new Promise((r) => setTimeout(r, 100));
    assert.throws(
      () => h.chat.service.send(caller, { agent: agentId, message: 'again' }),
      (err: { code?: string; details?: { turnId?: string } }) => err.code === 'CONFLICT' && err.details?.turnId === t.id,
    );
    await t.finished;
    h.llm.script([{ text: 'free again' }]);
    assert.is((await run(agentId, 'now')).result.response, 'free again');
  });

  test('an unknown tool or bad arguments reach the model as tool errors, and the turn goes on', async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never' });
    h.llm.script([
      {
        toolCalls: [
          { name: 'format_disk', input: { all: true } },
          { name: 'execute', input: { cmd: 'ls' } },
          { name: 'execute', input: '{not json' },
        ],
      },
      { text: 'sorry' },
    ]);
    const { events, result } = await run(agentId, 'go');
    assert.is(result.status, 'completed');
    assert.equal(
      events.filter((e) => e.type === 'tool_end').map((e) => e.data.status),
      ['invalid', 'invalid', 'invalid'],
    );
    assert.equal(h.ran, []);
    const second = JSON.stringify(h.llm.requests[1]!.body);
    assert.match(second, /format_disk/);
    assert.match(second, /command/);
  });

  test('the step budget: after maxSteps tool rounds the model must answer without tools', async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never', maxSteps: 1 });
    h.llm.script([{ toolCalls: [{ name: 'list_files', input: {} }] }, { text: 'final' }]);
    const { result } = await run(agentId, 'loop');
    assert.is(result.response, 'final');
    const last = h.llm.requests[1]!.body;
    assert.ok(JSON.stringify(last.tool_choice ?? '').includes('none'), `the last call forbids tools: ${JSON.stringify(last.tool_choice)}`);
  });

  test('a model that calls a tool anyway once the step budget is spent: the call does not run and the turn ends with an error', async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never', maxSteps: 1 });
    h.llm.script([
      { toolCalls: [{ name: 'execute', input: { command: 'one' } }] },
      { toolCalls: [{ name: 'execute', input: { command: 'two' } }] },
    ]);
    const { events, result } = await run(agentId, 'loop');
    assert.equal(
      h.ran.map((r) => r.command),
      ['one'],
    );
    assert.is(events.at(-1)!.type, 'error');
    assert.match(String(events.at(-1)!.data.message), /tool choice was none/);
    assert.is(result.status, 'failed');
    assert.is(h.llm.requests.length, 2);
  });

  test('the token budget ends the turn once spent', async () => {
    const { agentId } = await h.agent({ approvalPolicy: 'never', maxTokens: 100 });
    h.llm.script([{ toolCalls: [{ name: 'list_files', input: {} }], usage: { input: 90, output: 20 } }, { text: 'never asked' }]);
    const { result } = await run(agentId, 'go');
    assert.is(result.reason, 'token_budget');
    assert.is(h.llm.requests.length, 1);
  });

  test('provider down: an error event and a clean end; the next turn works', async () => {
    const { agentId } = await h.agent();
    h.llm.script([{ status: 500 }, { text: 'back' }]);
    const { events, result } = await run(agentId, 'hi');
    assert.equal(shape(events), ['error']);
    assert.is(events[0]!.data.code, 'PROVIDER_ERROR');
    assert.is(result.status, 'failed');
    assert.is((await run(agentId, 'again')).result.response, 'back');
  });

  test('provider slow: after DIRECTOR_LLM_TIMEOUT_MS of silence an error event ends the turn', async () => {
    await h.close();
    h = await harness(kind, { llmTimeoutMs: 1000 });
    const { agentId } = await h.agent();
    h.llm.script([{ hang: true }]);
    const { events, result } = await run(agentId, 'hi');
    assert.is(events.at(-1)!.type, 'error');
    assert.is(events.at(-1)!.data.code, 'PROVIDER_TIMEOUT');
    assert.is(result.status, 'failed');
  });

  test('a session that ends cancels its running turn and its waiting approvals', async () => {
    const { agentId, sessionId } = await h.agent();
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'x' } }] }]);
    const t = h.chat.service.send(caller, { agent: agentId, message: 'x' });
    for await (const e of h.chat.service.follow(caller, sessionId, t.fromSeq, { turnId: t.id })) if (e.type === 'tool_approval') break;
    await h.sessions.delete(caller, sessionId);
    const r = await t.finished;
    assert.is(r.status, 'cancelled');
    assert.equal(h.ran, []);
    assert.is(h.chat.approvals.list(caller, { sessionId, limit: 5, offset: 0 }).items[0]!.status, 'cancelled');
  });

  test('a bound vault secret reaches the tool as its environment and nowhere else: not the model, messages or events', async () => {
    const SECRET = 'tok_live_8c1f0a77d2e94b5f';
    const v = h.chat.vault.store(caller, { name: 'DEPLOY_TOKEN', value: SECRET });
    const { agentId, sessionId } = await h.agent({ approvalPolicy: 'never', secrets: { DEPLOY_TOKEN: v.id } });
    h.answer = () => ({
      exitCode: 0,
      stdout: `token=${SECRET}\nb64=${Buffer.from(SECRET).toString('base64')}\n`,
      stderr: `cut: ${SECRET.slice(0, 10)}`,
    });
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo token=$DEPLOY_TOKEN' } }] }, { text: 'done' }]);
    const { events } = await run(agentId, 'deploy');
    assert.equal(h.ran[0]!.env, { DEPLOY_TOKEN: SECRET }, 'the tool got the secret');
    const everywhere = [
      h.llm.everything(),
      JSON.stringify(events),
      JSON.stringify(h.chat.service.messages(caller, sessionId, { limit: 50, offset: 0 })),
      JSON.stringify(h.events.list({ limit: 1000 })),
    ].join('\n');
    assert.not.match(everywhere, SECRET);
    assert.not.match(everywhere, Buffer.from(SECRET).toString('base64').replace(/=+$/, ''));
    assert.match(h.llm.requests[1]!.raw, /\[redacted:DEPLOY_TOKEN\]/);
    // A model that says the value anyway (a user pasted it, say) is redacted in the stream and the messages too.
    h.llm.script([{ text: [`the token is ${SECRET}`, ' ok'] }]);
    const said = await run(agentId, 'what is it?');
    assert.not.match(JSON.stringify(said.events), SECRET);
    assert.not.match(JSON.stringify(h.chat.service.messages(caller, sessionId, { limit: 50, offset: 0 })), SECRET);
  });

  test('a priced model gives the turn a cost; stats add up tokens, cost and tool calls', async () => {
    await h.close();
    h = await harness(kind, { llmPricing: JSON.stringify({ 'fake-model': { input: 2, output: 10 } }) });
    const { agentId, sessionId } = await h.agent({ approvalPolicy: 'never' });
    h.llm.script([
      { toolCalls: [{ name: 'execute', input: { command: 'x' } }], usage: { input: 1000, output: 100 } },
      { text: 'ok', usage: { input: 1000, output: 100 } },
    ]);
    const { result } = await run(agentId, 'go');
    assert.is(result.cost, 0.006);
    const stats = h.chat.service.stats(caller, sessionId);
    assert.equal(stats.turns.total, 1);
    assert.equal([stats.usage.inputTokens, stats.usage.outputTokens], [2000, 200]);
    assert.is(stats.cost, 0.006);
    assert.equal(stats.toolCalls.byTool, { execute: 1 });
    assert.equal(stats.toolCalls.byStatus, { ok: 1 });
  });

  test('deleting the agent cancels its turn', async () => {
    const { agentId } = await h.agent();
    h.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'x' } }] }]);
    const t = h.chat.service.send(caller, { agent: agentId, message: 'x' });
    for await (const e of h.chat.service.follow(caller, t.sessionId, t.fromSeq, { turnId: t.id })) if (e.type === 'tool_approval') break;
    await h.chat.agents.delete(caller, agentId);
    assert.is((await t.finished).status, 'cancelled');
  });

  test('no provider: 503 naming the settings', async () => {
    await h.close();
    h = await harness(kind, { llmProvider: '' });
    const { agentId } = await h.agent();
    assert.throws(
      () => h.chat.service.send(caller, { agent: agentId, message: 'hi' }),
      (err: Error & { code?: string }) =>
        err.code === 'SERVICE_UNAVAILABLE' &&
        ['DIRECTOR_LLM_PROVIDER', 'DIRECTOR_LLM_BASE_URL', 'DIRECTOR_LLM_API_KEY', 'DIRECTOR_LLM_MODEL'].every((s) =>
          err.message.includes(s),
        ),
    );
    assert.is(h.llm.requests.length, 0, 'nothing is sent anywhere');
  });

  test.run();
}
