/** The SDK against a real server (real Docker engine): typed calls, streaming, files, terminals, live events. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AuthenticationError,
  DirectorApiError,
  DirectorClient,
  NotFoundError,
  ValidationError,
  unwrap,
  type ChannelMessage,
  type ExecOutput,
  type SecurityEvent,
  type StatusChange,
  type Tokens,
} from '../../../sdk/index.ts';
import { ADMIN_PASSWORD, startApi, type TestApi } from '../../helpers/api.ts';
import { HubSockets } from '../../helpers/sockets.ts';
import { BUSYBOX, eventually } from '../../helpers/runtime.ts';

const test = suite('sdk');
let api: TestApi;
let client: DirectorClient;

/** Rejects with what `promise` rejects with, or fails the test. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  return assert.unreachable('expected a rejection');
}

test.before(async () => {
  // Logins, refreshes and key creations here are auth requests: more than the default auth rate limit allows.
  api = await startApi({ rateLimitSandbox: 100_000, rateLimitGeneral: 100_000, rateLimitAuth: 1000 });
  // The Director Protocol writes the base URL with /v1: accepted as such.
  client = await DirectorClient.login({ baseURL: `${api.url}/v1`, username: 'admin', password: ADMIN_PASSWORD });
});
test.after(async () => {
  await api?.close();
});

test('login, then typed calls: me, and any route of the document through client.api', async () => {
  const me = await client.auth.me();
  assert.is(me.username, 'admin');
  assert.ok(me.scopes.includes('sandboxes:exec'));
  const summary = unwrap(await client.api.GET('/v1/security/events/summary', { params: { query: { window: '1h' } } }));
  assert.type(summary, 'object');
});

test('create runs a sandbox; the same idempotency key returns the same one; await using deletes it', async () => {
  let id: string;
  {
    await using sandbox = await client.sandboxes.create({ image: BUSYBOX, name: 'sdk-one' }, { idempotencyKey: 'sdk-create-1' });
    id = sandbox.id;
    assert.is(sandbox.status, 'running');
    assert.is(sandbox.info.name, 'sdk-one');
    const again = await client.sandboxes.create({ image: BUSYBOX, name: 'sdk-one' }, { idempotencyKey: 'sdk-create-1' });
    assert.is(again.id, id);
    const listed = await client.sandboxes.list({ status: 'running' });
    assert.ok(listed.items.some((s) => s.id === id));
  }
  const gone = await rejection(client.sandboxes.get(id));
  assert.instance(gone, NotFoundError);
});

test('exec streams output as it is produced and resolves with the exit status and the whole output', async () => {
  await using sandbox = await client.sandboxes.create({ image: BUSYBOX });
  const seen: (ExecOutput & { atMs: number })[] = [];
  const started = Date.now();
  const run = sandbox.exec(['sh', '-c', 'echo a; echo b >&2; sleep 2; echo c; exit 4']);
  for await (const chunk of run) seen.push({ ...chunk, atMs: Date.now() - started });
  const result = await run.result;
  assert.is(result.exitCode, 4);
  assert.is(result.stdout, 'a\nc\n');
  assert.is(result.stderr, 'b\n');
  assert.is(
    seen
      .filter((c) => c.stream === 'stdout')
      .map((c) => c.data)
      .join(''),
    'a\nc\n',
  );
  const a = seen.find((c) => c.data.includes('a'))!;
  const c = seen.find((x) => x.data.includes('c'))!;
  assert.ok(c.atMs - a.atMs >= 1500, `"a" arrived at ${a.atMs} ms, "c" at ${c.atMs} ms: not streamed`);
  const shell = await sandbox.run('echo $((6*7))');
  assert.equal([shell.exitCode, shell.stdout], [0, '42\n']);
  const withInput = await sandbox.run(['cat'], { stdin: 'typed' });
  assert.is(withInput.stdout, 'typed');
});

test('a command that cannot run rejects with the typed error; cancel stops a running one', async () => {
  const missing = client.sandboxes.ref('sbx_0000000000000000').exec(['true']);
  const err = await rejection(missing.result);
  assert.instance(err, NotFoundError);
  assert.is((err as NotFoundError).code, 'NOT_FOUND');
  assert.is((err as NotFoundError).status, 404);
  assert.match(String((err as NotFoundError).requestId), /^req_/);
  const iterated = await rejection(
    (async () => {
      for await (const _ of missing) assert.unreachable('no output expected');
    })(),
  );
  assert.is(iterated, err);

  await using sandbox = await client.sandboxes.create({ image: BUSYBOX });
  const long = sandbox.exec(['sh', '-c', 'echo started; sleep 300']);
  for await (const chunk of long) {
    if (chunk.data.includes('started')) break;
  }
  long.cancel();
  assert.is((await rejection(long.result)) instanceof Error, true);
  // The server kills the command when the request goes away.
  await eventually(async () => !(await sandbox.run(['ps', '-o', 'args'])).stdout.includes('sleep 300'), 15_000, 300);
});

test('validation errors name the field; files go in and out', async () => {
  const bad = await rejection(client.sandboxes.create({ image: BUSYBOX, resourceLimits: { memory: 1 } }));
  assert.instance(bad, ValidationError);
  assert.is((bad as ValidationError).field, 'resourceLimits.memory');
  await using sandbox = await client.sandboxes.create({ image: BUSYBOX });
  const written = await sandbox.files.write('/workspace/hello.txt', 'héllo\n');
  assert.equal(written, { path: '/workspace/hello.txt', bytes: 7 });
  assert.is(await sandbox.files.readText('/workspace/hello.txt'), 'héllo\n');
  assert.equal([...(await sandbox.files.read('/workspace/hello.txt')).slice(0, 2)], [0x68, 0xc3]);
  const tar = sandbox.files.downloadTar('/workspace');
  const bytes = new Uint8Array(await new Response(await tar).arrayBuffer());
  assert.ok(new TextDecoder().decode(bytes).includes('workspace/hello.txt'));
  const dir = await rejection(sandbox.files.read('/workspace'));
  assert.instance(dir, DirectorApiError);
});

test('a terminal: bytes both ways, resize, the exit status; refused for a sandbox that does not exist', async () => {
  await using sandbox = await client.sandboxes.create({ image: BUSYBOX });
  const term = await sandbox.terminal({ cols: 80, rows: 24 });
  let text = '';
  term.onData((b) => (text += new TextDecoder().decode(b)));
  term.write('echo $((6*7))\n');
  await eventually(() => /\r?\n42\r?\n/.test(text));
  term.resize(100, 40);
  term.write('stty size\n');
  await eventually(() => text.includes('40 100'));
  term.write('exit 3\n');
  assert.is(await term.exited, 3);
  const refused = await rejection(
    client.sandboxes
      .ref('sbx_0000000000000000')
      .terminal()
      .then((t) => t.exited),
  );
  assert.instance(refused, NotFoundError);
});

test('events.subscribe: live messages per channel; after a dropped connection it resumes from its cursor, nothing lost or repeated', async () => {
  const hub = new HubSockets(api);
  const states: StatusChange['state'][] = [];
  const sub = client.events.subscribe({ channels: ['security', 'sandboxes'], reconnect: { initialDelayMs: 1000 } });
  sub.onStatus((s) => states.push(s.state));
  try {
    const security: SecurityEvent[] = [];
    const lifecycle: ChannelMessage[] = [];
    sub.on('security_event', (m) => security.push(m.data));
    sub.on('sandbox_event', (m) => lifecycle.push(m));
    await sub.ready;
    const keyIds: string[] = [];
    const makeKey = async (name: string) => keyIds.push((await client.auth.apiKeys.create({ name, scopes: ['sandboxes:read'] })).id);
    await makeKey('live-1');
    await eventually(() => security.some((e) => e.type === 'api_key_created'));
    hub.dropAll();
    // While the client waits to reconnect (at least half of 1000 ms), the stream goes on.
    await makeKey('gap-2');
    await makeKey('gap-3');
    const sandbox = await client.sandboxes.create({ image: BUSYBOX });
    await sandbox.delete();
    await eventually(() => hub.connections === 2 && hub.open === 1, 10_000);
    await makeKey('after-4');
    const keysSeen = () => security.filter((e) => e.type === 'api_key_created').map((e) => e.details.keyId as string);
    await eventually(() => keysSeen().length === 4, 10_000);
    assert.equal(keysSeen(), keyIds, 'each key event once, in order');
    await eventually(() => lifecycle.filter((m) => (m.data as { sandboxId: string }).sandboxId === sandbox.id).length === 2);
    assert.equal(
      lifecycle.filter((m) => (m.data as { sandboxId: string }).sandboxId === sandbox.id).map((m) => (m.data as { event: string }).event),
      ['created', 'deleted'],
    );
    const seqs = security.map((e) => e.seq);
    assert.equal(
      seqs,
      [...new Set(seqs)].sort((x, y) => x - y),
      'cursors strictly increase',
    );
    assert.equal(states.slice(0, 4), ['connecting', 'live', 'reconnecting', 'reconnecting']);
    assert.is(states.at(-1), 'live');
    // A new subscription from a saved cursor replays what came after it.
    const from = sub.cursor('security')!;
    sub.close();
    await sub.done;
    await makeKey('offline-5');
    const replay = client.events.subscribe({ channels: ['security'], after: from });
    const replayed: string[] = [];
    for await (const m of replay) {
      const e = m.data as SecurityEvent;
      if (e.type === 'api_key_created') replayed.push(e.details.keyId as string);
      if (replayed.length === 1) break;
    }
    assert.equal(replayed, [keyIds[4]]);
  } finally {
    sub.close();
  }
});

test('a subscription refused for a missing scope ends with the typed error', async () => {
  const key = await client.auth.apiKeys.create({ name: 'no-security', scopes: ['sandboxes:read'] });
  const limited = new DirectorClient({ baseURL: api.url, token: key.key! });
  const sub = limited.events.subscribe({ channels: ['security'] });
  const err = await rejection(sub.ready);
  assert.instance(err, DirectorApiError);
  assert.is((err as DirectorApiError).code, 'AUTHORIZATION_ERROR');
  await rejection(sub.done);
});

test('a refused access token is replaced through the refresh token once, and the new pair is handed over', async () => {
  const tokens = await client.auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  const handed: Tokens[] = [];
  const stale = new DirectorClient({
    baseURL: api.url,
    token: 'not-a-valid-token',
    refreshToken: tokens.refreshToken,
    onTokens: (t) => void handed.push(t),
  });
  const [a, b] = await Promise.all([stale.auth.me(), stale.auth.me()]);
  assert.is(a.username, 'admin');
  assert.is(b.username, 'admin');
  assert.is(handed.length, 1, 'concurrent callers share one refresh');
  assert.is(stale.transport.token, handed[0]!.token);
  // The spent refresh token cannot be used again: a client holding only it must log in anew.
  const spent = new DirectorClient({ baseURL: api.url, token: 'not-a-valid-token', refreshToken: tokens.refreshToken });
  assert.instance(await rejection(spent.auth.me()), AuthenticationError);
});

test.run();
