/**
 * The CLI at a real terminal (a pseudo-terminal): `sandbox shell` in raw mode with resizes and
 * Ctrl-C going to the sandbox, the password prompt without echo, and progress shown on a
 * terminal but never in pipes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD, startApi, type TestApi } from '../../helpers/api.ts';
import { CliUser, DIRECTOR_BIN, ROOT } from '../../helpers/cli.ts';
import { PtyProcess } from '../../helpers/pty.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('cli-terminal');
let api: TestApi;
let user: CliUser;
const ptys: PtyProcess[] = [];

/** `director ...args` on a terminal. */
const atTerminal = (args: string[], size: { rows?: number; cols?: number } = {}) => {
  const p = new PtyProcess([process.execPath, DIRECTOR_BIN, ...args], { env: user.env, cwd: ROOT, ...size });
  ptys.push(p);
  return p;
};

test.before(async () => {
  api = await startApi({ rateLimitSandbox: 100_000, rateLimitGeneral: 100_000 });
  user = new CliUser();
});
test.after(async () => {
  for (const p of ptys) p.kill();
  user?.cleanup();
  await api?.close();
});

test('login asks for the password at the terminal without echoing it', async () => {
  const login = atTerminal(['login', '--url', api.url, '--username', 'admin']);
  await login.until('Password for admin: ');
  login.type(`${ADMIN_PASSWORD}\r`);
  assert.is(await login.exited, 0, login.output);
  assert.match(login.output, /Logged in to .* as admin/);
  assert.not.match(login.output, ADMIN_PASSWORD, 'the password was echoed');
});

test('long operations show progress on a terminal and nothing in a pipe', async () => {
  const tty = atTerminal(['sandbox', 'create', '-q', '--image', BUSYBOX]);
  assert.is(await tty.exited, 0, tty.output);
  assert.match(tty.output, /Creating sandbox/);
  const id = /sbx_[A-Za-z0-9_-]{16}/.exec(tty.output)![0];
  const piped = await user.run(['sandbox', 'rm', id]);
  assert.is(piped.code, 0, piped.stderr);
  assert.is(piped.stderr, '', 'progress leaked into a pipe');
  assert.is(piped.stdout, `sandbox ${id} deleted\n`);
});

test('sandbox shell: an interactive shell in raw mode; resizes reach it, Ctrl-C goes to the sandbox, its exit status is ours', async () => {
  const created = await user.run(['sandbox', 'create', '-q', '--image', BUSYBOX]);
  assert.is(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  const shell = atTerminal(['sandbox', 'shell', id], { rows: 24, cols: 80 });
  await shell.until('/workspace $ ');
  shell.type('echo $((6*7))\r');
  // The sandbox's terminal ends lines with \r\n; the local terminal shows them as they are (its
  // own \n → \r\n translation is off while the shell runs), never as \r\r\n.
  await shell.until(/[^\r]\r\n42\r\n/);
  shell.type('stty size\r');
  await shell.until(/[^\r]\r\n24 80\r\n/);
  shell.resize(40, 100);
  shell.type('stty size\r');
  await shell.until(/[^\r]\r\n40 100\r\n/);
  // Ctrl-C interrupts the sandbox's foreground command, not the CLI.
  shell.type('sleep 300\r');
  await shell.until('sleep 300');
  await new Promise((r) => setTimeout(r, 500));
  shell.type('\u0003');
  shell.type('echo alive-$((1+1))\r');
  await shell.until(/alive-2\r\n/);
  shell.type('exit 7\r');
  assert.is(await shell.exited, 7, shell.output);
  assert.not.ok(shell.output.includes('\r\r\n'), `a line end was translated twice: ${JSON.stringify(shell.output.slice(-300))}`);
  await user.run(['sandbox', 'rm', id]);
});

test.run();
