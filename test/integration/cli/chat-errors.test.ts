/**
 * `director chat` when the turn cannot happen, as a user meets it: real CLI processes against
 * real servers. No LLM provider configured (the API's 503 naming the settings), a provider that
 * is down (nothing listens at its address, loopback only), an agent that does not exist (a 400
 * naming `agent`). Each is one error line with the API's code on stderr, nothing on stdout, exit 1.
 * At a terminal, a message the API refuses for now (503: no provider; 409: a turn is in
 * progress) is one error line and the prompt comes back.
 */
import { createServer } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD, call } from '../../helpers/api.ts';
import { startChatApi, type ChatApi } from '../../helpers/chat.ts';
import { CliUser, DIRECTOR_BIN, ROOT, type CliResult } from '../../helpers/cli.ts';
import { PtyProcess } from '../../helpers/pty.ts';
import { eventually } from '../../helpers/runtime.ts';

const test = suite('cli-chat-errors');
let bare: ChatApi;
let down: ChatApi;
/** A provider that takes requests and never answers: a turn there stays in progress. */
let slow: ChatApi;
const users: CliUser[] = [];
const ptys: PtyProcess[] = [];

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
  slow = await startChatApi('openai');
  slow.llm.script([{ hang: true }]);
});
test.after(async () => {
  for (const p of ptys) p.kill();
  for (const u of users) u.cleanup();
  await bare?.close();
  await down?.close();
  await slow?.close();
});

/** `director chat AGENT` on a terminal, as `user`. */
function chatAtTerminal(user: CliUser, agentId: string): PtyProcess {
  const p = new PtyProcess([process.execPath, DIRECTOR_BIN, 'chat', agentId], { env: user.env, cwd: ROOT, rows: 24, cols: 300 });
  ptys.push(p);
  return p;
}

/** The `error: ` lines the terminal showed (readline's redraws stripped). */
const terminalErrors = (output: string) =>
  output
    .split(/\r?\n/)
    .map((l) => l.replace(/\x1b\[[\d;]*[A-Za-z]/g, '').replace(/^.*?(?=error: )/, ''))
    .filter((l) => l.startsWith('error: '));

/** Types `message` and waits for the error line it brings and the prompt after it; returns that line. */
async function refused(p: PtyProcess, message: string, code: string): Promise<string> {
  const seen = terminalErrors(p.output).length;
  p.type(`${message}\r`);
  await eventually(() => terminalErrors(p.output).length > seen, 20_000, 20).catch(() => assert.unreachable(`no error line: ${p.output}`));
  const line = terminalErrors(p.output)[seen]!;
  assert.match(line, new RegExp(`^error: ${code}: `));
  // The prompt again, after the error line.
  await p.until(/error: [^\n]*\r?\n(\x1b\[[\d;]*[A-Za-z])*> (\x1b\[[\d;]*[A-Za-z])*$/);
  return line;
}

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

test('at a terminal, a 503 or a 409 is one error line and the prompt comes back for the next message', async () => {
  // 503: no provider configured.
  const bareUser = await userOf(bare);
  const { agentId: bareAgent } = await bare.agent();
  const p = chatAtTerminal(bareUser, bareAgent);
  await p.until('> ');
  const line = await refused(p, 'hello', 'SERVICE_UNAVAILABLE');
  assert.match(line, /DIRECTOR_LLM_PROVIDER/);
  await refused(p, 'hello again', 'SERVICE_UNAVAILABLE');
  p.type('\u0004');
  assert.is(await p.exited, 0, p.output);

  // 409: a turn of the session is in progress (its provider never answers).
  const slowUser = await userOf(slow);
  const { agentId, sessionId } = await slow.agent();
  const asked = slow.llm.requests.length;
  const running = slow.post('/v1/chat', { agent: agentId, message: 'take your time' });
  await eventually(() => slow.llm.requests.length > asked, 10_000, 20);
  const q = chatAtTerminal(slowUser, agentId);
  await q.until('> ');
  assert.match(await refused(q, 'are you there?', 'CONFLICT'), /turn in progress/);
  await refused(q, 'still busy?', 'CONFLICT');
  q.type('\u0004');
  assert.is(await q.exited, 0, q.output);
  // Deleting the session cancels the turn in progress, which answers its request.
  const gone = await call(slow.api.url, 'DELETE', `/v1/sessions/${sessionId}`, { token: slow.api.adminToken });
  assert.is(gone.status, 200, gone.text);
  assert.is((await running).status, 409);
});

test.run();
