/**
 * A server killed with its warm pool full: the next start hands out none of the old warm
 * sandboxes (their exec agent's channel died with the old process), removes them, refills, and
 * its refills make the disk size the last claims asked for.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { eventually, removeContainers, testRuntime } from '../helpers/runtime.ts';

const test = suite('pool restart');
const engine = new DockerEngine();
const runtimeName = `test-${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync(path.join(tmpdir(), 'director-pool-restart-'));

test.after(async () => {
  await removeContainers(engine, runtimeName);
  rmSync(dataDir, { recursive: true, force: true });
});

test('after SIGKILL the old warm sandboxes are removed, never claimed, and the refills follow the last claims', async () => {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, '../fixtures/pool-crash-child.ts')], {
    env: { ...process.env, CRASH_DATA_DIR: dataDir, CRASH_RUNTIME_NAME: runtimeName },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  let said: { claimed: string; pooled: boolean };
  try {
    said = await new Promise((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()) as { claimed: string; pooled: boolean }));
      child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
  const oldWarm = (await engine.listContainers({ [LABEL.runtime]: runtimeName })).map((c) => c.id).filter((id) => id !== undefined);
  assert.ok(oldWarm.length >= 3, `the dead process left its claimed sandbox and full pool (${oldWarm.length} containers)`);

  const rt = testRuntime({ runtimeName, dataDir, poolSize: 2, poolImages: 'director/busybox:latest' });
  try {
    await rt.start({ waitForPool: true });
    const store = rt.sandboxes.deps.store;
    const claimedRec = store.byId(said.claimed);
    assert.is(claimedRec?.status, 'running', "the user's sandbox outlives the restart");
    const oldPooledIds = new Set(
      store
        .inStates(['creating', 'running', 'stopping', 'stopped', 'failed', 'deleted'])
        .filter((r) => r.containerId && oldWarm.includes(r.containerId) && r.id !== said.claimed)
        .map((r) => r.id),
    );
    // The refills made the disk size of the last claim before the restart.
    const warmNow = store.inStates(['running']).filter((r) => r.pooled);
    assert.ok(
      warmNow.some((r) => r.spec.resourceLimits.disk === 96),
      `no warm sandbox of 96 MiB: ${warmNow.map((r) => r.spec.resourceLimits.disk).join(', ')}`,
    );
    assert.ok(
      warmNow.every((r) => !oldWarm.includes(r.containerId!)),
      'an old warm sandbox is still in the pool',
    );
    // A claim now gets a new warm sandbox, never one of the dead process's.
    const sb = await rt.sandboxes.create({ image: 'director/busybox:latest', resourceLimits: { disk: 96 } }, { workspace: 'wsp_crash' });
    assert.ok(!oldWarm.includes(sb.containerId!), 'a warm sandbox of the killed process was handed out');
    assert.ok(!oldPooledIds.has(sb.id));
    const out = await rt.executor.run({ workspace: 'wsp_crash' }, sb.id, { command: ['echo', 'fresh'] });
    assert.is(out.stdout, 'fresh\n');
    // The old warm containers are gone; the user's claimed one stays.
    await eventually(async () => {
      const live = new Set((await engine.listContainers({ [LABEL.runtime]: runtimeName })).map((c) => c.id));
      return oldWarm.filter((id) => live.has(id)).length === 1;
    }, 20_000);
    assert.ok((await engine.inspectContainer(claimedRec!.containerId!))?.running);
  } finally {
    await rt.cleanup();
  }
});

test.run();
