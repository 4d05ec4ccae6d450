/**
 * The `director` CLI over the orchestration layer, as a user runs it: real processes against a
 * real server (real engine) whose LLM provider is a local fake speaking OpenAI's wire format
 * (test/helpers/fake-llm.ts, loopback only). Sessions; `workflow run -f` following a run to its
 * end (exit 0 completed, 1 failed with the reason), in a pipe and at a terminal; `chat` reading
 * one message from a pipe, and at a pseudo-terminal answering an approval with `y`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD } from '../../helpers/api.ts';
import { startChatApi, type ChatApi } from '../../helpers/chat.ts';
import { CliUser, DIRECTOR_BIN, ROOT } from '../../helpers/cli.ts';
import type { Reply } from '../../helpers/fake-llm.ts';
import { PtyProcess } from '../../helpers/pty.ts';

const test = suite('cli-orchestration');
let c: ChatApi;
let user: CliUser;
let scratch: string;
const ptys: PtyProcess[] = [];
const director = (args: string[], opts: Parameters<CliUser['run']>[1] = {}) => user.run(args, opts);

/** `director ...args` on a terminal. */
const atTerminal = (args: string[]) => {
  const p = new PtyProcess([process.execPath, DIRECTOR_BIN, ...args], { env: user.env, cwd: ROOT, rows: 24, cols: 200 });
  ptys.push(p);
  return p;
};

/** The provider's replies for the requests from now on, in order (the last one repeats). */
const script = (replies: Reply[]) => {
  // The fake counts `index` from this call on.
  c.llm.script((_req, index) => replies[Math.min(index, replies.length - 1)]!);
};

const file = (name: string, text: string) => {
  const p = path.join(scratch, name);
  writeFileSync(p, text);
  return p;
};

const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error: '));

test.before(async () => {
  c = await startChatApi('openai', { llmTimeoutMs: 10_000 });
  user = new CliUser();
  scratch = mkdtempSync(path.join(tmpdir(), 'director-cli-orch-'));
  const login = await director(['login', '--url', c.api.url, '--username', 'admin', '--password-stdin'], { input: `${ADMIN_PASSWORD}\n` });
  assert.is(login.code, 0, login.stderr);
});
test.after(async () => {
  for (const p of ptys) p.kill();
  user?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await c?.close();
});

test('session create, ls, get, end and rm; ending twice is refused with the API code', async () => {
  const created = await director(['session', 'create', 'cli-session', '--timeout', '10m', '-q']);
  assert.is(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  assert.match(id, /^ses_/);

  const ls = await director(['session', 'ls']);
  assert.is(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^ID\s+NAME\s+STATUS/);
  assert.match(ls.stdout, new RegExp(`^${id}\\s+cli-session\\s+active\\s`, 'm'));
  const json = await director(['session', 'ls', '-o', 'json']);
  const items = JSON.parse(json.stdout) as { id: string; status: string; config: { timeout: number } }[];
  assert.equal(
    items.filter((s) => s.id === id).map((s) => [s.status, s.config.timeout]),
    [['active', 600_000]],
  );

  const ended = await director(['session', 'end', id]);
  assert.is(ended.code, 0, ended.stderr);
  assert.is(ended.stdout, `session ${id} completed\n`);
  const got = await director(['session', 'get', id, '-o', 'yaml']);
  assert.match(got.stdout, /^status: completed$/m);
  const again = await director(['session', 'end', id]);
  assert.is(again.code, 1);
  assert.match(errorLines(again.stderr)[0]!, /^error: CONFLICT: /);

  const rm = await director(['session', 'rm', id]);
  assert.is(rm.code, 0, rm.stderr);
  const gone = await director(['session', 'get', id]);
  assert.is(gone.code, 1);
  assert.match(errorLines(gone.stderr)[0]!, /^error: NOT_FOUND: /);
});

test('workflow run -f: a two-step workflow (execute + verify) completes, exit 0, with plain step lines in a pipe', async () => {
  const ses = (await director(['session', 'create', 'wf', '-q'])).stdout.trim();
  const spec = file(
    'build.yaml',
    [
      'name: build',
      'steps:',
      '  - type: execute',
      '    command: echo "built-$GREETING"',
      '  - type: verify',
      '    criteria: tests pass',
      '',
    ].join('\n'),
  );
  const r = await director(['workflow', 'run', '-f', spec, '--session', ses, '-e', 'GREETING=hello'], { timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  const id = /workflow (wf_\S+) \(build\) completed in (?:\d+ms|\d+\.\d+s)\n/.exec(r.stdout)?.[1];
  assert.ok(id, r.stdout);
  assert.match(r.stdout, /^built-hello$/m, 'the output of the last execute');
  assert.match(r.stderr, /^step 1\/2 execute completed \(exit 0, (?:\d+ms|\d+\.\d+s)\)$/m);
  assert.match(r.stderr, /^step 2\/2 verify completed/m);
  assert.not.match(r.stderr, /\x1b\[|execute running/, 'no live line in a pipe');

  const status = await director(['workflow', 'status', id, '-o', 'json']);
  const s = JSON.parse(status.stdout) as { status: string; sessionId: string; run: { steps: { status: string }[] } };
  assert.equal([s.status, s.sessionId, s.run.steps.map((x) => x.status)], ['completed', ses, ['completed', 'completed']]);
  const table = await director(['workflow', 'status', id]);
  assert.match(table.stdout, /^Status\s+completed$/m);
  assert.match(table.stdout, /^1\s+execute\s+completed\s+1\s+0\s/m);
  await director(['session', 'rm', ses]);
});

test('workflow run -f: a failing verify exits 1 and prints the reason (step, criterion, what it saw)', async () => {
  const spec = file(
    'fail.json',
    JSON.stringify({
      name: 'doomed',
      steps: [
        { type: 'execute', command: 'echo nope; exit 3' },
        { type: 'verify', criteria: { exitCode: 0 } },
      ],
    }),
  );
  // No --session: the CLI makes one named after the workflow.
  const r = await director(['workflow', 'run', '-f', spec], { timeoutMs: 60_000 });
  assert.is(r.code, 1, r.stderr);
  const ses = /created session (ses_\S+)/.exec(r.stderr)?.[1];
  assert.ok(ses, r.stderr);
  assert.match(r.stdout, /workflow wf_\S+ \(doomed\) failed/);
  assert.match(r.stderr, /^step 1\/2 execute failed \(exit 3/m);
  const lines = errorLines(r.stderr);
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^error: WORKFLOW_FAILED: workflow wf_\S+ failed: verify_failed at step 2: .*saw/);
  assert.match(lines[0]!, /3/, 'what the verify saw');
  await director(['session', 'rm', ses]);
});

test('workflow run at a terminal shows a live line for the step running', async () => {
  const ses = (await director(['session', 'create', 'wf-tty', '-q'])).stdout.trim();
  const spec = file(
    'slow.yaml',
    'name: slow\nsteps:\n  - type: execute\n    command: sleep 1; echo slept\n  - type: verify\n    criteria: succeeds\n',
  );
  const p = atTerminal(['workflow', 'run', '-f', spec, '--session', ses]);
  await p.until(/step 1\/2 execute running 0% (?:\d+ms|\d+\.\ds)/, 30_000);
  assert.is(await p.exited, 0, p.output);
  assert.match(p.output, /step 1\/2 execute completed \(exit 0/);
  assert.match(p.output, /workflow wf_\S+ \(slow\) completed/);
  await director(['session', 'rm', ses]);
});

test('chat with stdin not a terminal sends one message and prints the answer; a call needing approval is denied without --yes', async () => {
  const { sessionId, agentId } = await c.agent({ systemPrompt: 'Be brief.' });
  script([{ text: ['Hello', ' from ', 'the model'] }]);
  const r = await director(['chat', agentId], { input: 'say hello\n' });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'Hello from the model\n');
  assert.match(c.llm.requests.at(-1)!.raw, /say hello/);

  const json = await director(['chat', 'coder', '--session', sessionId, '-o', 'json'], { input: 'again' });
  assert.is(json.code, 0, json.stderr);
  const done = JSON.parse(json.stdout) as { sessionId: string; response: string };
  assert.equal([done.sessionId, done.response], [sessionId, 'Hello from the model']);

  script([{ toolCalls: [{ name: 'execute', input: { command: 'touch /workspace/never' } }] }, { text: 'It was denied.' }]);
  const denied = await director(['chat', agentId], { input: 'make a file' });
  assert.is(denied.code, 0, denied.stderr);
  assert.match(denied.stderr, /^» execute \{"command":"touch \/workspace\/never"\}$/m);
  assert.match(denied.stderr, /denied execute: it needs approval and there is no terminal to ask/);
  assert.match(denied.stderr, /^« execute denied/m);
  assert.is(denied.stdout, 'It was denied.\n');
  const approvals = await c.get<{ items: { status: string; tool: string }[] }>(`/v1/approvals?sessionId=${sessionId}`);
  assert.equal(
    approvals.body.data.items.map((a) => [a.tool, a.status]),
    [['execute', 'denied']],
  );
});

test('chat at a terminal: streams the answer, shows the tool call, asks y/N and runs the call once approved', async () => {
  const { sessionId, agentId } = await c.agent();
  script([
    { text: 'Running it.', toolCalls: [{ name: 'execute', input: { command: 'echo approved-$((6*7))' } }] },
    { text: 'The command printed approved-42.' },
  ]);
  const p = atTerminal(['chat', agentId]);
  await p.until('> ');
  p.type('run the command\r');
  await p.until(/Allow execute \{"command":"echo approved-\$\(\(6\*7\)\)"\}\? \[y\/N\] /);
  p.type('y\r');
  await p.until('The command printed approved-42.');
  // The prompt again (readline redraws it with cursor escapes).
  await p.until(/approved-42\.\r?\n(\x1b\[\d*[A-Z])*> /);
  assert.match(p.output, /Running it\./);
  assert.match(p.output, /« execute ok \(exit 0, (?:\d+ms|\d+\.\d+s)\)/);
  p.type('\u0004');
  assert.is(await p.exited, 0, p.output);
  assert.match(p.output, new RegExp(`session ${sessionId}`));
  const approvals = await c.get<{ items: { status: string }[] }>(`/v1/approvals?sessionId=${sessionId}`);
  assert.equal(
    approvals.body.data.items.map((a) => a.status),
    ['approved'],
  );
  // What the model got back is the command's real output from the sandbox.
  assert.match(c.llm.requests.at(-1)!.raw, /approved-42/);

  // --yes approves without asking, in a pipe too.
  script([{ toolCalls: [{ name: 'execute', input: { command: 'echo yes-$((1+1))' } }] }, { text: 'ok' }]);
  const yes = await director(['chat', agentId, '--yes'], { input: 'again' });
  assert.is(yes.code, 0, yes.stderr);
  assert.match(yes.stderr, /approved execute \(--yes\)/);
  assert.match(yes.stderr, /^« execute ok \(exit 0/m);
  assert.match(c.llm.requests.at(-1)!.raw, /yes-2/);
});

test('chat: a provider failure is one error line with its code and exit 1', async () => {
  const { agentId } = await c.agent();
  script([{ status: 500 }]);
  const r = await director(['chat', agentId, '-m', 'fail please']);
  assert.is(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^error: [A-Z_]+: /);
});

test.run();
