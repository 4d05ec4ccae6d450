/**
 * Interactive shells as a runtime operation, without HTTP: what the terminal route (and later
 * agent tools) call. A TTY shell runs as the sandbox user, its opening and closing are recorded,
 * and it passes the same checks as execute.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isDirectorError } from '../../core/errors.ts';
import { BUSYBOX, caller, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('shell');
let rt: TestRuntime;

test.before(async () => {
  rt = testRuntime();
  await rt.start();
});
test.after(async () => {
  await rt?.cleanup();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return isDirectorError(err) ? err.code : `not a DirectorError: ${String(err)}`;
  }
  return 'no error';
}

test('a shell runs commands as the sandbox user on a TTY and reports its exit; both ends are recorded', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const session = await rt.shells.open(caller, sb.id, { shell: 'sh' });
  assert.ok(session);
  let out = '';
  session.process.stdout.on('data', (b: Buffer) => (out += b.toString()));
  session.process.stdin!.write('id -u; tty; exit 3\n');
  const { exitCode } = await session.exited;
  assert.is(exitCode, 3);
  assert.match(out, /^1000\r?$/m);
  assert.match(out, /\/dev\/pts\//);
  const opened = rt.events.list({ sandboxId: sb.id, type: 'terminal_opened', limit: 5 });
  const closed = rt.events.list({ sandboxId: sb.id, type: 'terminal_closed', limit: 5 });
  assert.is(opened.length, 1);
  assert.equal(opened[0]!.details, { shell: 'sh' });
  assert.is(opened[0]!.actor, caller.actor);
  assert.is(closed.length, 1);
  assert.is(closed[0]!.details.exitCode, 3);
  await rt.sandboxes.delete(caller, sb.id);
});

test('the checks of execute: another workspace is 404, allowExec false is 403 and recorded, a stopped sandbox is 409', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  assert.is(await codeOf(rt.shells.open({ workspace: 'wsp_other', actor: 'x' }, sb.id)), 'NOT_FOUND');
  const closedOff = await rt.sandboxes.create({ image: BUSYBOX, securityPolicy: { allowExec: false } }, caller);
  assert.is(await codeOf(rt.shells.open(caller, closedOff.id)), 'AUTHORIZATION_ERROR');
  assert.is(rt.events.list({ sandboxId: closedOff.id, type: 'exec_denied', limit: 5 }).length, 1);
  await rt.sandboxes.stop(caller, sb.id);
  assert.is(await codeOf(rt.shells.open(caller, sb.id)), 'CONFLICT');
  assert.is(rt.events.list({ sandboxId: sb.id, type: 'terminal_opened', limit: 5 }).length, 0);
  await rt.sandboxes.delete(caller, sb.id);
  await rt.sandboxes.delete(caller, closedOff.id);
});

test('a shell whose caller went away while it started is killed and not recorded', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const gone = new AbortController();
  const opening = rt.shells.open(caller, sb.id, { signal: gone.signal });
  gone.abort();
  assert.is(await opening, null);
  assert.is(rt.events.list({ sandboxId: sb.id, type: 'terminal_opened', limit: 5 }).length, 0);
  await rt.sandboxes.delete(caller, sb.id);
});

test.run();
