/**
 * countedExecutes: the API's executes in a session's sandbox as tasks, around a fake Executor
 * (the real one over HTTP is in test/integration/api/sessions.test.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countedExecutes, TaskTracker } from '../../../orchestration/tasks.ts';
import type { SessionStore } from '../../../orchestration/sessions/store.ts';
import type { ExecChunk, Executor } from '../../../runtime/sandbox/execute.ts';

const caller = { workspace: 'wsp_a' };

function setup(owner: { sessionId: string | null; departmentId: string | null } | 'refused') {
  const stored = { total: 0, failed: 0 };
  const store = {
    countTask: (_s: string, _d: string | null, failed: boolean) => {
      stored.total++;
      if (failed) stored.failed++;
    },
    tasks: () => ({ ...stored }),
  } as unknown as SessionStore;
  const tasks = new TaskTracker(store);
  const calls = { prepare: 0, streamed: 0, returned: 0 };
  const executor = {
    prepare() {
      calls.prepare++;
      if (owner === 'refused') throw new Error('refused');
      return { rec: { owner: { ...owner, environmentId: null } } };
    },
    async run() {
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, timedOut: false, truncated: false };
    },
    async *stream(): AsyncGenerator<ExecChunk> {
      calls.streamed++;
      try {
        yield { type: 'stdout', data: 'a' };
        yield { type: 'stdout', data: 'b' };
        yield { type: 'exit', exitCode: 0, durationMs: 1, timedOut: false, truncated: false };
      } finally {
        calls.returned++;
      }
    },
  } as unknown as Executor;
  return { port: countedExecutes(executor, tasks), tasks, calls };
}

test("a streamed execute whose consumer stops early is one task, ended once (failed: no exit seen), the executor's stream closed", async () => {
  const { port, tasks, calls } = setup({ sessionId: 'ses_1', departmentId: 'dep_1' });
  const it = port.stream(caller, 'sbx_1', {});
  assert.is((await it.next()).done, false);
  assert.equal(tasks.of('ses_1'), { total: 1, active: 1, failed: 0 });
  await it.return(undefined);
  await it.return(undefined);
  assert.equal(tasks.of('ses_1'), { total: 1, active: 0, failed: 1 });
  assert.equal(tasks.of('ses_1', 'dep_1').active, 0);
  assert.is(calls.returned, 1);
});

test('a streamed execute read to its exit is one task, not failed', async () => {
  const { port, tasks } = setup({ sessionId: 'ses_1', departmentId: null });
  for await (const _c of port.stream(caller, 'sbx_1', {}));
  assert.equal(tasks.of('ses_1'), { total: 1, active: 0, failed: 0 });
});

test('a refused execute is no task, and is refused by one call of prepare (its refusal recorded once)', async () => {
  const { port, tasks, calls } = setup('refused');
  await port.run(caller, 'sbx_1', {}).then(
    () => assert.unreachable(),
    (err: Error) => assert.is(err.message, 'refused'),
  );
  assert.is(calls.prepare, 1);
  await port
    .stream(caller, 'sbx_1', {})
    .next()
    .then(
      () => assert.unreachable(),
      (err: Error) => assert.is(err.message, 'refused'),
    );
  assert.is(calls.streamed, 0, 'nothing ran');
  assert.equal(tasks.of('ses_1'), { total: 0, active: 0, failed: 0 });
});

test('an execute in a sandbox outside any session counts nowhere', async () => {
  const { port, tasks } = setup({ sessionId: null, departmentId: null });
  await port.run(caller, 'sbx_1', {});
  for await (const _c of port.stream(caller, 'sbx_1', {}));
  assert.equal(tasks.of('ses_1'), { total: 0, active: 0, failed: 0 });
});

test.run();
