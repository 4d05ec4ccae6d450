/**
 * `kill -9` of a real server process while workflow steps run, then a new server on the same
 * data dir: a run with a retry left resumes (what the lost step started is killed, the last
 * checkpoint is restored, the step runs again) and completes; a run without one fails as
 * `interrupted`. Every attempt is on record; nothing ran twice without one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { call } from '../helpers/api.ts';
import { eventually, removeContainers } from '../helpers/runtime.ts';
import { WorkflowClient } from '../helpers/workflows.ts';

const test = suite('workflow-crash');
const engine = new DockerEngine();
const PASSWORD = 'crash-admin-password-1';
const dataDir = mkdtempSync(path.join(tmpdir(), 'director-wf-crash-'));
const runtimeName = `wfcrash-${randomBytes(4).toString('hex')}`;
const children: ChildProcess[] = [];

test.after(async () => {
  for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
  await removeContainers(engine, runtimeName);
  rmSync(dataDir, { recursive: true, force: true });
});

async function server(): Promise<{ child: ChildProcess; client: WorkflowClient }> {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, '../fixtures/workflow-server.ts')], {
    env: { ...process.env, WF_DATA_DIR: dataDir, WF_RUNTIME_NAME: runtimeName, WF_ADMIN_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /ready (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const login = await call<{ data: { token: string } }>(url, 'POST', '/v1/auth/login', { body: { username: 'admin', password: PASSWORD } });
  assert.is(login.status, 200, login.text);
  return { child, client: new WorkflowClient(url, login.body.data.token) };
}

// Each start is logged in /tmp (not checkpointed). The first sleeps long (the server is killed
// meanwhile, and would find it still running after a restart), a retry briefly; both log when done.
const step = (tag: string) =>
  `echo start >> /tmp/${tag}-starts; n=$(wc -l < /tmp/${tag}-starts); echo $n > /workspace/partial-$n; if [ $n = 1 ]; then sleep 300; else sleep 1; fi; echo done >> /tmp/${tag}-finished; echo ok`;

test('after kill -9 mid-step a run with a retry left completes; one without fails as interrupted', async () => {
  const first = await server();
  let c = first.client;
  const ses = await c.session();
  const sbxA = await c.sandbox(ses);
  const sbxB = await c.sandbox(ses);
  const mk = (name: string, sandboxId: string, tag: string, maxRetries: number) =>
    c.create({
      sessionId: ses,
      name,
      sandboxId,
      steps: [
        { type: 'checkpoint', name: 'base' },
        { type: 'execute', command: step(tag), timeout: 30_000 },
        { type: 'verify', criteria: 'tests pass' },
      ],
      config: { maxRetries, backoff: { initialInterval: 50 } },
    });
  const resumes = await mk('resumes', sbxA, 'a', 1);
  const interrupted = await mk('interrupted', sbxB, 'b', 0);
  await c.start(resumes);
  await c.start(interrupted);
  for (const [id, sbx] of [
    [resumes, sbxA],
    [interrupted, sbxB],
  ] as const) {
    await c.until(id, (s) => s.run?.currentStep?.type === 'execute' && s.run.currentStep.status === 'running', 20_000);
    await eventually(async () => (await c.exec(sbx, 'ps')).stdout.includes('sleep 300'), 5000);
  }
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));

  const second = await server();
  c = second.client;
  const a = await c.until(resumes, undefined, 60_000);
  assert.is(a.status, 'completed', JSON.stringify(a.run?.reason));
  const execA = a.run!.steps[1]!.attempts;
  assert.equal(
    execA.map((x) => [x.status, x.round]),
    [
      ['interrupted', 0],
      ['completed', 1],
    ],
  );
  assert.match(execA[0]!.error ?? '', /server stopped/);
  // What the lost attempt left running (its shell and its `sleep 300`) is gone (checked with ps
  // below): through the exec agent (the default) the agent killed it when the server's connection
  // closed, so the restart finds nothing left; through `docker exec` the restart kills them. The
  // attempt records how many the restart killed either way.
  const viaAgent = process.env.DIRECTOR_TEST_EXEC_AGENT !== 'off';
  const killedAtRestart = (x: { killedProcesses?: number }) =>
    assert.ok(viaAgent ? x.killedProcesses === 0 : (x.killedProcesses ?? 0) >= 2, JSON.stringify(x));
  killedAtRestart(execA[0]!);
  assert.is(a.run!.retries, 1);
  assert.equal(
    a.run!.rollbacks.map((r) => r.status),
    ['completed'],
  );
  const b = await c.until(interrupted, undefined, 30_000);
  assert.is(b.status, 'failed');
  assert.is(b.run!.reason!.code, 'interrupted');
  assert.is(b.run!.reason!.step, 2);
  assert.equal(
    b.run!.steps[1]!.attempts.map((x) => x.status),
    ['interrupted'],
  );
  killedAtRestart(b.run!.steps[1]!.attempts[0]!);
  // What the lost attempts started was killed at restart, in both sandboxes: only the retry ran to its end.
  for (const sbx of [sbxA, sbxB]) assert.not.match((await c.exec(sbx, 'ps')).stdout, /sleep 300/, `the lost step still runs in ${sbx}`);
  assert.is((await c.exec(sbxA, 'cat /tmp/a-starts | wc -l')).stdout.trim(), '2', 'started twice, both on record');
  assert.is((await c.exec(sbxA, 'cat /tmp/a-finished | wc -l')).stdout.trim(), '1', 'only the retry finished');
  assert.is((await c.exec(sbxB, 'cat /tmp/b-finished 2>/dev/null | wc -l')).stdout.trim(), '0');
  assert.is((await c.exec(sbxA, 'ls /workspace')).stdout.trim(), 'partial-2', 'the lost attempt’s file was rolled back');
  second.child.kill('SIGTERM');
  await new Promise((r) => second.child.once('exit', r));
});

test.run();
