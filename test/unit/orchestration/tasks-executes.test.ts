/**
 * Executes as tasks: the observer countedExecutes hands the Executor, run through the Executor's
 * own `followed` (what Executor.stream does once its checks passed). The real Executor over HTTP,
 * refusals included (no task, recorded once), is in test/integration/api/sessions.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countedExecutes, TaskTracker } from '../../../orchestration/tasks.ts';
import type { SessionStore } from '../../../orchestration/sessions/store.ts';
import { followed, type ExecChunk, type Executor, type TaskObserver } from '../../../runtime/sandbox/execute.ts';
import type { SandboxRecord } from '../../../runtime/store/sandboxes.ts';

const caller = { workspace: 'wsp_a' };

function setup() {
  const stored = { total: 0, failed: 0 };
  const store = {
    countTask: (_s: string, _d: string | null, failed: boolean) => {
      stored.total++;
      if (failed) stored.failed++;
    },
    tasks: () => ({ ...stored }),
  } as unknown as SessionStore;
  const tasks = new TaskTracker(store);
  // The observer countedExecutes passes to every run and stream.
  const seen: (TaskObserver | undefined)[] = [];
  const executor = {
    prepare: () => ({}),
    async run(_c: unknown, _i: string, _r: unknown, _s: unknown, task?: TaskObserver) {
      seen.push(task);
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, timedOut: false, truncated: false };
    },
    async *stream(_c: unknown, _i: string, _r: unknown, _s: unknown, task?: TaskObserver): AsyncGenerator<ExecChunk> {
      seen.push(task);
    },
  } as unknown as Executor;
  const port = countedExecutes(executor, tasks);
  return { port, tasks, seen };
}

const rec = (sessionId: string | null, departmentId: string | null) =>
  ({ owner: { sessionId, departmentId, environmentId: null } }) as SandboxRecord;

function chunks(exitCode: number, calls: { returned: number }): AsyncGenerator<ExecChunk> {
  return (async function* () {
    try {
      yield { type: 'stdout', data: 'a' };
      yield { type: 'stdout', data: 'b' };
      yield { type: 'exit', exitCode, durationMs: 1, timedOut: false, truncated: false };
    } finally {
      calls.returned++;
    }
  })();
}

test('both run and stream hand the Executor the task observer', async () => {
  const { port, seen } = setup();
  await port.run(caller, 'sbx_1', {});
  for await (const _c of port.stream(caller, 'sbx_1', {}));
  assert.is(seen.length, 2);
  assert.ok(seen.every((t) => typeof t === 'function'));
});

test("a streamed execute whose consumer stops early is one task, ended once (failed: no exit seen), the executor's stream closed", async () => {
  const { port, tasks, seen } = setup();
  await port.run(caller, 'sbx_1', {});
  const calls = { returned: 0 };
  const it = followed(rec('ses_1', 'dep_1'), seen[0], chunks(0, calls));
  assert.is((await it.next()).done, false);
  assert.equal(tasks.of('ses_1'), { total: 1, active: 1, failed: 0 });
  await it.return(undefined);
  await it.return(undefined);
  assert.equal(tasks.of('ses_1'), { total: 1, active: 0, failed: 1 });
  assert.equal(tasks.of('ses_1', 'dep_1').active, 0);
  assert.is(calls.returned, 1);
});

test('a streamed execute read to its exit is one task, failed only on a non-zero exit', async () => {
  const { port, tasks, seen } = setup();
  await port.run(caller, 'sbx_1', {});
  for await (const _c of followed(rec('ses_1', null), seen[0], chunks(0, { returned: 0 })));
  assert.equal(tasks.of('ses_1'), { total: 1, active: 0, failed: 0 });
  for await (const _c of followed(rec('ses_1', null), seen[0], chunks(3, { returned: 0 })));
  assert.equal(tasks.of('ses_1'), { total: 2, active: 0, failed: 1 });
});

test('an execute in a sandbox outside any session counts nowhere', async () => {
  const { port, tasks, seen } = setup();
  await port.run(caller, 'sbx_1', {});
  assert.is(seen[0]!(rec(null, null)), null);
  for await (const _c of followed(rec(null, null), seen[0], chunks(0, { returned: 0 })));
  assert.equal(tasks.of('ses_1'), { total: 0, active: 0, failed: 0 });
});

test.run();
