/**
 * `director chat` when the turn cannot happen, as a user meets it: real CLI processes against
 * real servers. No LLM provider configured (the API's 503 naming the settings), a provider that
 * is down (nothing listens at its address, loopback only), an agent that does not exist (a 400
 * naming `agent`). Each is one error line with the API's code on stderr, nothing on stdout, exit 1.
 */
import { createServer } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD } from '../../helpers/api.ts';
import { startChatApi, type ChatApi } from '../../helpers/chat.ts';
import { CliUser, type CliResult } from '../../helpers/cli.ts';

const test = suite('cli-chat-errors');
let bare: ChatApi;
let down: ChatApi;
const users: CliUser[] = [];

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A CLI user logged in to `c`. */
async function userOf(c: ChatApi): Promise<CliUser> {
  const user = new CliUser();
  users.push(user);
  const login = await user.run(['login', '--url', c.api.url, '--username', 'admin', '--password-stdin'], { input: `${ADMIN_PASSWORD}\n` });
  assert.is(login.code, 0, login.stderr);
  return user;
}

/** The run failed as one `error: CODE: message` line, exit 1, with nothing on stdout. */
function failedWith(r: CliResult, code: string): string {
  assert.is(r.code, 1, `exit code; stderr: ${r.stderr}`);
  assert.is(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, new RegExp(`^error: ${code}: `));
  return lines[0]!;
}

test.before(async () => {
  bare = await startChatApi('openai', { llmProvider: '' });
  down = await startChatApi('openai', { llmBaseUrl: `http://127.0.0.1:${await closedPort()}/v1` });
});
test.after(async () => {
  for (const u of users) u.cleanup();
  await bare?.close();
  await down?.close();
});

test('no provider configured: the 503 is shown with the settings to set, exit 1, from -m and from a pipe', async () => {
  const user = await userOf(bare);
  const { agentId } = await bare.agent();
  for (const r of [await user.run(['chat', agentId, '-m', 'hi']), await user.run(['chat', agentId], { input: 'hi from a pipe\n' })]) {
    const line = failedWith(r, 'SERVICE_UNAVAILABLE');
    for (const s of ['DIRECTOR_LLM_PROVIDER', 'DIRECTOR_LLM_BASE_URL', 'DIRECTOR_LLM_API_KEY', 'DIRECTOR_LLM_MODEL']) assert.match(line, s);
  }
  const json = await user.run(['chat', agentId, '-m', 'hi', '-o', 'json']);
  failedWith(json, 'SERVICE_UNAVAILABLE');
  assert.is(bare.llm.requests.length, 0, 'nothing was sent to a provider');
});

test('provider down: the turn ends with the provider error as one line, exit 1; the next command is served', async () => {
  const user = await userOf(down);
  const { agentId } = await down.agent();
  const r = await user.run(['chat', agentId, '-m', 'hi']);
  failedWith(r, 'PROVIDER_ERROR');
  const json = await user.run(['chat', agentId, '-m', 'hi', '-o', 'json']);
  failedWith(json, 'PROVIDER_ERROR');
  // The failed turns did not take the session or the server with them.
  const ls = await user.run(['session', 'ls']);
  assert.is(ls.code, 0, ls.stderr);
});

test('an agent that does not exist (by id or by name): the 400 naming it, exit 1', async () => {
  const user = await userOf(down);
  const byId = failedWith(await user.run(['chat', 'agt_AAAAAAAAAAAAAAAA', '-m', 'hi']), 'VALIDATION_ERROR');
  assert.match(byId, /no agent agt_AAAAAAAAAAAAAAAA in this workspace/);
  const byName = failedWith(await user.run(['chat', 'nobody-by-this-name', '-m', 'hi']), 'VALIDATION_ERROR');
  assert.match(byName, /no agent named nobody-by-this-name/);
});

test.run();
