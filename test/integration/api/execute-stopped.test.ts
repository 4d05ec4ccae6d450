/**
 * Execute in a sandbox whose container stopped under Director (killed outside it) before the
 * record caught up: the answer is the 409 `CONFLICT` envelope a stopped sandbox gets, never a
 * 500 from the engine's refusal nor a 200 with exit code -1. The engine's events for that
 * container are held back, so the record stays `running` for as long as the test needs.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine } from '../../../runtime/engine/docker/docker.ts';
import type { Engine, EngineEvent } from '../../../runtime/engine/engine.ts';
import { call, startApi, type TestApi } from '../../helpers/api.ts';

const test = suite('api-execute-stopped');
let api: TestApi;
const muted = new Set<string>();

/** The real engine, whose event stream leaves out the containers in `muted`. */
function mutingEngine(): Engine {
  const real = new DockerEngine();
  return new Proxy(real, {
    get(target, key, receiver) {
      if (key === 'events')
        return async function* (labels: Record<string, string>, signal: AbortSignal): AsyncIterable<EngineEvent> {
          for await (const ev of target.events(labels, signal)) if (!muted.has(ev.containerId)) yield ev;
        };
      const v = Reflect.get(target, key, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test.before(async () => {
  api = await startApi({}, { engine: mutingEngine() });
});
test.after(async () => {
  await api?.close();
});

test('execute in a sandbox whose container was killed under a `running` record is 409 CONFLICT, as JSON and as SSE', async () => {
  const t = api.adminToken;
  const created = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: t, body: { name: 'killed' } });
  assert.is(created.status, 201, created.text);
  const id = created.body.data.id;
  const before = await call(api.url, 'POST', `/v1/sandboxes/${id}/execute`, { token: t, body: { command: ['echo', 'up'] } });
  assert.is(before.status, 200, before.text);
  const containerId = api.rt.sandboxes.deps.store.byId(id)!.containerId!;
  muted.add(containerId);
  await api.rt.engine.killContainer(containerId, 'SIGKILL');
  // First the path that ran the last execute (the exec agent, whose connection went with the
  // container), then the engine's own exec, which the engine refuses for a stopped container.
  for (const accept of ['application/json', 'application/json', 'text/event-stream']) {
    const res = await call(api.url, 'POST', `/v1/sandboxes/${id}/execute`, {
      token: t,
      body: { command: ['echo', 'hi'] },
      headers: { accept },
    });
    assert.is(res.status, 409, `${accept}: ${res.text}`);
    assert.is(res.body.success, false);
    assert.is(res.body.error?.code, 'CONFLICT');
    assert.match(res.body.error?.message ?? '', /not running/);
  }
  const rec = api.rt.sandboxes.deps.store.byId(id)!;
  assert.is(rec.status, 'running', 'the record caught up: the test no longer checks the window it is about');
});

test.run();
