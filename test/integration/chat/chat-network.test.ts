/**
 * A tool that reaches for a host its sandbox's network policy denies fails, and the kernel's
 * drop becomes the `egress_denied` event naming the agent's sandbox; the allowed host is
 * reached (the control). Both wire formats: one agent on the instance's OpenAI-compatible
 * provider, one on an Anthropic provider an admin registered through the API. The hosts are
 * TEST-NET addresses in this test's own network namespace (test/helpers/fake-internet.ts).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startChatApi, type ChatApi } from '../../helpers/chat.ts';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { startFakeLlm, type FakeLlm } from '../../helpers/fake-llm.ts';
import { BASE, eventually } from '../../helpers/runtime.ts';

const test = suite('chat-network');
const ALLOWED = '203.0.113.10';
const DENIED = '203.0.113.20';
let fi: FakeInternet;
let c: ChatApi;
let claude: FakeLlm;

test.before(async () => {
  fi = await startFakeInternet({ webHosts: [ALLOWED, DENIED] });
  c = await startChatApi('openai', { networking: 'on', nftCheckIntervalMs: 300 });
  claude = await startFakeLlm('anthropic');
});
test.after(async () => {
  await c?.close();
  await claude?.close();
  await fi?.close();
});

/** A python3 probe: connect, send a token, print what happened; exit 3 when the connection fails. */
const probe = (host: string, token: string) =>
  `python3 -c 'import socket,sys
try:
    s=socket.create_connection(("${host}",80),timeout=2); s.sendall(b"${token}\\n"); print("reply", s.recv(100)); s.close()
except Exception as e:
    print("failed", type(e).__name__); sys.exit(3)'`;

test('a tool call to a host the policy denies fails and produces the deny event; the allowed host is reached', async () => {
  await fi.assertRoute(ALLOWED);
  await fi.assertRoute(DENIED);
  const net = await c.post<{ id: string }>('/v1/networks', { name: 'chat-net', enableDNS: false });
  assert.is(net.status, 201, net.text);
  const policy = await c.post(`/v1/networks/${net.body.data.id}/policies`, {
    name: 'only-allowed',
    outbound: [{ action: 'allow', protocol: 'tcp', destination: `${ALLOWED}/32`, port: 80 }],
  });
  assert.is(policy.status, 200, policy.text);
  const provider = await c.post<{ id: string; apiKey: string }>('/v1/llm/providers', {
    name: 'claude',
    type: 'anthropic',
    baseUrl: claude.baseUrl,
    apiKey: 'registered-provider-key-1234',
    defaultModel: 'claude-fake',
  });
  assert.is(provider.status, 201, provider.text);
  assert.is(provider.body.data.apiKey, '[redacted]');
  assert.not.match(provider.text, 'registered-provider-key-1234');

  const session = await c.post<{ id: string }>('/v1/sessions', { name: 'net', config: { networkId: net.body.data.id } });
  const dep = await c.post<{ id: string }>('/v1/departments', { sessionId: session.body.data.id, name: 'ops', domain: 'ops' });
  const agents = [
    { name: 'gpt', llm: c.llm, extra: {} },
    { name: 'claude', llm: claude, extra: { provider: provider.body.data.id } },
  ];
  for (const a of agents) {
    const created = await c.post<{ id: string }>('/v1/agents', {
      departmentId: dep.body.data.id,
      name: a.name,
      approvalPolicy: 'never',
      sandbox: { image: BASE },
      ...a.extra,
    });
    assert.is(created.status, 201, created.text);
    const okToken = `ok-${a.name}-${Date.now()}`;
    const deniedToken = `no-${a.name}-${Date.now()}`;
    a.llm.script([
      {
        toolCalls: [
          { name: 'execute', input: { command: probe(ALLOWED, okToken) } },
          { name: 'execute', input: { command: probe(DENIED, deniedToken) } },
        ],
      },
      { text: 'checked' },
    ]);
    const r = await c.chatSse({ agent: created.body.data.id, message: 'check connectivity' });
    const ends = r.events
      .filter((e) => e.event === 'tool_end')
      .map((e) => e.data as { exitCode: number; sandboxId: string; result: { stdout: string } });
    assert.is(ends.length, 2, JSON.stringify(r.events));
    assert.is(ends[0]!.exitCode, 0, ends[0]!.result.stdout);
    assert.match(ends[0]!.result.stdout, /reply/);
    assert.is(ends[1]!.exitCode, 3, 'the denied connection fails');
    assert.match(ends[1]!.result.stdout, /failed/);
    await fi.waitFor((o) => o.kind === 'tcp' && o.data.includes(okToken), 5000);
    assert.equal(
      fi.received((o) => o.kind === 'tcp' && o.data.includes(deniedToken)),
      [],
      'nothing reached the denied host',
    );
    const sandboxId = ends[1]!.sandboxId;
    const ev = await eventually(async () => {
      const list = await c.get<{ items: { type: string; sandboxId: string; details: { destination: string } }[] }>(
        '/v1/security/events?type=egress_denied&limit=200',
      );
      return list.body.data.items.find((e) => e.sandboxId === sandboxId && e.details.destination === DENIED);
    }, 10_000);
    assert.is(ev.type, 'egress_denied');
    // The model got the failure back as the tool's result.
    assert.match(a.llm.requests.at(-1)!.raw, /failed/);
  }
  // The registered provider got its own key; the instance key never went to it.
  assert.is(claude.requests[0]!.headers['x-api-key'], 'registered-provider-key-1234');
  assert.not.match(claude.everything(), 'test-provider-key-0123456789');
});

test.run();
