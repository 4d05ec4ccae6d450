/**
 * SIGKILL of the runtime at any moment of a create, then a restart, leaves no leaked
 * container and no record stuck in `creating`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { removeContainers, testRuntime } from '../helpers/runtime.ts';

const test = suite('crash');
const engine = new DockerEngine();
const names: string[] = [];
const dirs: string[] = [];

test.after(async () => {
  for (const n of names) await removeContainers(engine, n);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function crashDuringCreates(killAfterMs: number): Promise<{ dataDir: string; runtimeName: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'director-crash-'));
  const runtimeName = `crash-${randomBytes(4).toString('hex')}`;
  dirs.push(dataDir);
  names.push(runtimeName);
  const child = spawn(process.execPath, [path.join(import.meta.dirname, '../fixtures/crash-child.ts')], {
    env: { ...process.env, CRASH_DATA_DIR: dataDir, CRASH_RUNTIME_NAME: runtimeName },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
  });
  await new Promise((r) => setTimeout(r, killAfterMs));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return { dataDir, runtimeName };
}

for (const killAfterMs of [5, 120, 350, 900]) {
  test(`a restart after SIGKILL ${killAfterMs} ms into creating leaves no orphan container`, async () => {
    const { dataDir, runtimeName } = await crashDuringCreates(killAfterMs);
    const leftBefore = await engine.listContainers({ [LABEL.runtime]: runtimeName });
    const rt = testRuntime({ runtimeName, dataDir });
    try {
      await rt.start();
      const containers = await engine.listContainers({ [LABEL.runtime]: runtimeName });
      const records = rt.sandboxes.deps.store.inStates(['creating', 'running', 'stopping']);
      assert.is(records.filter((r) => r.status === 'creating').length, 0, 'a record is stuck in creating');
      // Every container left is owned by a running record, and every running record has its container.
      const owned = new Set(records.map((r) => r.containerId));
      for (const c of containers) assert.ok(owned.has(c.id), `orphan container ${c.names[0]} survived reconcile`);
      for (const r of records)
        assert.ok(
          containers.some((c) => c.id === r.containerId),
          `record ${r.id} has no container`,
        );
      // Killed mid-create records are failed, not lost.
      const failed = rt.sandboxes.list({ workspace: 'wsp_crash' }, { status: 'failed', limit: 100, offset: 0 }).items;
      for (const f of failed) assert.match(f.reason ?? '', /restarted during create|vanished/);
      if (killAfterMs >= 350) assert.ok(leftBefore.length > 0, 'the child should have created containers before it died');
    } finally {
      await rt.close();
    }
  });
}

test.run();
