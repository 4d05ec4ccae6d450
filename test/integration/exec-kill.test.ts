/**
 * Killing an exec through the engine when the engine's /proc is not this host's (a remote Docker
 * engine): every process that inherited the exec's marker dies, even one that keeps forking while
 * the kill runs.
 */
import Docker from 'dockerode';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startExec } from '../../runtime/engine/docker/exec.ts';
import { SANDBOX_USER } from '../../runtime/sandbox/hardening.ts';
import { BUSYBOX, caller, eventually, sleep, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('exec-kill');
let rt: TestRuntime;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

test.before(async () => {
  rt = testRuntime();
  await rt.start();
});
test.after(async () => {
  await rt.cleanup();
});

const ps = async (id: string) => (await rt.executor.run(caller, id, { command: ['ps', '-o', 'pid,args'], timeout: 10_000 })).stdout;

test('the remote kill (engine not local) leaves no marked process, even a parent forking while it runs', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const containerId = rt.sandboxes.get(caller, sb.id).containerId!;
  // A parent that starts a long-lived child every few milliseconds, and a setsid'd one doing the same.
  const loop = 'while :; do sleep 1000 & sleep 0.01; done';
  const h = await startExec(docker, false, containerId, {
    cmd: ['sh', '-c', `${loop} & setsid sh -c '${loop}' & wait`],
    env: {},
    user: SANDBOX_USER,
  });
  h.stdout.resume();
  h.stderr.resume();
  await eventually(async () => ((await ps(sb.id)).match(/sleep 1000/g)?.length ?? 0) >= 20 || null);
  await h.kill();
  // A survivor would be a `sleep 1000` started while the kill ran: nothing ends it on its own.
  await sleep(300);
  const left = await ps(sb.id);
  assert.not.match(left, /sleep 1000|while :/, `left running after the kill:\n${left}`);
  assert.is((await h.wait()).exitCode, 137);
});

test.run();
