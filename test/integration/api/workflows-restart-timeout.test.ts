/**
 * A run whose `config.timeout` passed while the server was down: the next start kills and settles
 * the step it lost (`interrupted`) before it ends the run `timed_out`, so no attempt is left
 * running and the run's end is the last event of its log.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startApi, type TestApi } from '../../helpers/api.ts';
import { sleep } from '../../helpers/runtime.ts';
import { assertSettled, ENDED, readEvents, stepRunning, WorkflowClient, type StatusView } from '../../helpers/workflows.ts';

const test = suite('api-workflows-restart-timeout');

/** Stops `first` while the run is open, waits until its deadline has passed, and starts a server on the same data. */
async function restartAfterDeadline(first: TestApi, mid: StatusView): Promise<TestApi> {
  const deadlineMs = Date.parse(mid.run!.deadlineAt!);
  const { dataDir } = first.rt;
  const { runtimeName } = first.rt.config;
  await first.stop();
  await sleep(Math.max(0, deadlineMs - Date.now() + 100));
  return startApi({ dataDir, runtimeName, rateLimitSandbox: 1000, rateLimitSession: 10_000 });
}

test('a run whose timeout passed while the server was down: its lost step is settled first, the timeout is its last event', async () => {
  const first = await startApi({ rateLimitSandbox: 1000, rateLimitSession: 10_000 });
  let second: TestApi | null = null;
  try {
    const a = new WorkflowClient(first.url, first.adminToken);
    const { id } = await a.inSandbox({
      name: 'outlived',
      steps: [
        { type: 'execute', command: 'sleep 361', timeout: 60_000 },
        { type: 'verify', criteria: 'succeeds' },
      ],
      // Long enough for the step to be seen running and the server stopped before it passes, under load.
      config: { timeout: 3000 },
    });
    await a.start(id);
    const mid = await a.until(id, (s) => stepRunning(s, 1));
    second = await restartAfterDeadline(first, mid);
    const b = new WorkflowClient(second.url, second.adminToken);
    const s = await b.status(id);
    assert.is(s.status, 'timed_out');
    assertSettled(s, 'after the restart');
    assert.equal(
      s.run!.steps.map((x) => x.attempts.map((t) => t.status)),
      [['interrupted'], []],
    );
    const log = await readEvents(second.url, second.adminToken, id);
    assert.equal(
      log.events.slice(-2).map((x) => [x.event, x.data.status ?? (x.data.currentStep as { status: string }).status]),
      [
        ['step', 'interrupted'],
        ['run', 'timed_out'],
      ],
    );
  } finally {
    if (second) await second.close();
    else await first.close();
  }
});

test('a run out of time at a restart removes the sandbox it made for itself then, not at the restart after', async () => {
  const first = await startApi({ rateLimitSandbox: 1000, rateLimitSession: 10_000 });
  let second: TestApi | null = null;
  try {
    const a = new WorkflowClient(first.url, first.adminToken);
    const ses = await a.session();
    const id = await a.create({
      sessionId: ses,
      name: 'outlived, own sandbox',
      steps: [{ type: 'execute', command: 'sleep 362', timeout: 60_000 }],
      // Long enough to make its sandbox and start the step under load.
      config: { timeout: 8000 },
    });
    await a.start(id);
    const mid = await a.until(id, (s) => stepRunning(s, 1) || ENDED.includes(s.status));
    assert.ok(stepRunning(mid, 1), JSON.stringify(mid.run));
    const own = mid.run!.sandboxId!;
    second = await restartAfterDeadline(first, mid);
    const b = new WorkflowClient(second.url, second.adminToken);
    assert.is((await b.status(id)).status, 'timed_out');
    const sbx = await b.get<{ status: string }>(`/v1/sandboxes/${own}`);
    assert.ok(sbx.status === 404 || sbx.body.data.status === 'deleted', `its own sandbox is left: ${sbx.text}`);
  } finally {
    if (second) await second.close();
    else await first.close();
  }
});

test.run();
