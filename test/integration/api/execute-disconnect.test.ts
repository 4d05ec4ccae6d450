/**
 * A client that goes away stops what it started: closing the connection mid-execute kills the
 * command (JSON and SSE alike), and many executes over one keep-alive connection leave nothing
 * behind on that connection.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX, eventually } from '../../helpers/runtime.ts';

const test = suite('api-execute-disconnect');
let api: TestApi;
let id = '';
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);

test.before(async () => {
  process.on('warning', onWarning);
  api = await startApi({ rateLimitSandbox: 1000 });
  const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { image: BUSYBOX } });
  assert.is(sb.status, 201, sb.text);
  id = sb.body.data.id;
});
test.after(async () => {
  process.off('warning', onWarning);
  await api?.close();
});

const execute = (body: unknown, init: { accept?: string; signal?: AbortSignal } = {}) =>
  fetch(`${api.url}/v1/sandboxes/${id}/execute`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${api.adminToken}`,
      'content-type': 'application/json',
      ...(init.accept ? { accept: init.accept } : {}),
    },
    body: JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });

/** Whether a process whose command line contains `marker` still runs in the sandbox. */
async function running(marker: string): Promise<boolean> {
  const ps = await call<{ data: { stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${id}/execute`, {
    token: api.adminToken,
    body: { command: ['ps', '-o', 'args'] },
  });
  assert.is(ps.status, 200, ps.text);
  return ps.body.data.stdout.split('\n').some((l) => l.includes(marker) && !l.includes('ps -o'));
}

test('closing the connection during a JSON execute kills the command', async () => {
  const ac = new AbortController();
  const pending = execute({ command: ['sleep', '301'] }, { signal: ac.signal }).catch((err: unknown) => err);
  await eventually(() => running('sleep 301'), 5000);
  ac.abort();
  await pending;
  await eventually(async () => !(await running('sleep 301')), 5000);
});

test('closing the connection during an SSE execute kills the command', async () => {
  const ac = new AbortController();
  const res = await execute({ command: 'echo started; sleep 302' }, { accept: 'text/event-stream', signal: ac.signal });
  assert.is(res.status, 200);
  const reader = res.body!.getReader();
  const first = (await reader.read()) as { value?: Uint8Array };
  assert.match(new TextDecoder().decode(first.value), /event: stdout/);
  assert.ok(await running('sleep 302'));
  ac.abort();
  await eventually(async () => !(await running('sleep 302')), 5000);
});

test('many executes over one keep-alive connection leave no listeners behind', async () => {
  for (let i = 0; i < 25; i++) {
    const res = await execute({ command: ['true'] }, i % 2 ? { accept: 'text/event-stream' } : {});
    assert.is(res.status, 200);
    await res.text();
  }
  const leaks = warnings.filter((w) => w.name === 'MaxListenersExceededWarning');
  assert.is(leaks.length, 0, leaks.map((w) => w.message).join('; '));
  // The sandbox still answers, and nothing was aborted by a stale listener.
  const ok = await call<{ data: { exitCode: number; stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${id}/execute`, {
    token: api.adminToken,
    body: { command: ['echo', 'fine'] },
  });
  assert.is(ok.body.data.stdout, 'fine\n');
});

test.run();
