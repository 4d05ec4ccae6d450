/**
 * A mount's capture (orchestration/checkpoints/capture.ts) over a temp directory standing for the
 * mount, read by Director's agent binary run here (MountSync with a local opener), on a real
 * SQLite store and blob store: the unchanged mount's second capture takes the previous manifest
 * whole, and gives exactly what the per-entry rule gives without that shortcut.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb, type Db } from '../../../core/db.ts';
import { BlobStore, type BlobBatch } from '../../../orchestration/checkpoints/blobs.ts';
import { captureSandbox, type CaptureDeps } from '../../../orchestration/checkpoints/capture.ts';
import { ManifestCache } from '../../../orchestration/checkpoints/manifest-cache.ts';
import { CheckpointStore, type SandboxCapture } from '../../../orchestration/checkpoints/store.ts';
import { MountSync } from '../../../runtime/sandbox/mount-sync.ts';
import type { SandboxRecord } from '../../../runtime/store/sandboxes.ts';
import { agentBinary, localOpener } from '../../helpers/local-exec.ts';

const dirs: string[] = [];
const dbs: Db[] = [];
test.after(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = (prefix: string) => {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

function setup() {
  const data = temp('director-capture-');
  const mount = temp('director-mount-');
  const db = openDb(data);
  dbs.push(db);
  const store = new CheckpointStore(db);
  const blobs = new BlobStore(path.join(data, 'checkpoints'), db, (ds) => store.referenced(ds));
  const mounts = new MountSync(localOpener({ PATH: '/usr/bin:/bin' }), { treeTool: () => agentBinary() });
  const rec = {
    id: 'sbx_1',
    name: 's',
    image: 'busybox',
    status: 'running',
    containerId: 'local',
    spec: { securityPolicy: { allowFilesystem: true, allowedPaths: [mount] } },
    owner: { sessionId: 'ses_1', departmentId: null, environmentId: null },
  } as unknown as SandboxRecord;
  const deps = (manifests: ManifestCache): CaptureDeps => ({ mounts, blobs, manifests, store, maxEntries: 1000, timeoutMs: 20_000 });
  let seq = 0;
  /** One capture of the sandbox, committed as a checkpoint as the service does; what it stored and pinned. */
  async function checkpoint(manifests: ManifestCache, spy: (b: BlobBatch) => void = () => undefined, maxBytes = 1 << 30) {
    const batch = blobs.batch('wsp_1');
    spy(batch);
    const budget = { maxBytes, used: 0 };
    const files: SandboxCapture[] = [await captureSandbox(deps(manifests), 'ses_1', rec, batch, budget)];
    await batch.flush();
    const id = `ckp_${++seq}`;
    const digests = [...new Set(batch.digests)].sort();
    assert.ok(
      store.insertBounded(
        {
          id,
          workspace: 'wsp_1',
          sessionId: 'ses_1',
          name: id,
          description: '',
          data: {},
          state: { session: { name: 's', description: '', status: 'active', config: {} as never }, departments: [] },
          context: { windows: [] },
          messages: [],
          files,
          bytes: budget.used,
          fileCount: 0,
          createdBy: null,
          createdMs: seq,
        },
        batch.digests,
        100,
        () => batch.insertPending(),
      ),
    );
    await batch.release(() => true);
    return { capture: files[0]!.mounts[0]!, digests, used: budget.used };
  }
  return { blobs, mount, checkpoint };
}

test("an unchanged mount's second capture takes the previous manifest whole (nothing built or stored), the same capture the per-entry rule makes", async () => {
  const { blobs, mount, checkpoint } = setup();
  await blobs.start(new Set());
  mkdirSync(path.join(mount, 'd'));
  for (let i = 0; i < 5; i++) writeFileSync(path.join(mount, `d/f${i}`), `file ${i}`);
  writeFileSync(path.join(mount, 'big'), Buffer.alloc(300 * 1024, 7));
  // Older than a second when listed: not racily clean.
  await new Promise((r) => setTimeout(r, 2100));
  const manifests = new ManifestCache();
  const first = await checkpoint(manifests);
  assert.is(first.capture.filesRead, 6);

  // The same listing: the manifest is neither built (put in the cache) nor stored (put in a batch).
  const puts: string[] = [];
  const put = manifests.put.bind(manifests);
  manifests.put = (...args) => (puts.push(args[0]), put(...args));
  let stored = 0;
  const second = await checkpoint(manifests, (b) => {
    const putBuffer = b.putBuffer.bind(b);
    b.putBuffer = (buf) => (stored++, putBuffer(buf));
  });
  assert.equal(puts, []);
  assert.is(stored, 0);

  // The per-entry rule (a cache that does not know which listing the manifest came from): the same capture.
  const perEntry = await checkpoint(new ManifestCache());
  assert.equal({ ...second.capture, listedAtS: 0 }, { ...perEntry.capture, listedAtS: 0 });
  assert.equal(second.digests, perEntry.digests);
  assert.is(second.used, perEntry.used);
  assert.equal({ ...second.capture, listedAtS: 0 }, { ...first.capture, listedAtS: 0, newBytes: 0, filesRead: 0 });
  assert.ok(second.capture.listedAtS >= first.capture.listedAtS);

  // Unchanged but over a smaller budget: refused as the per-entry rule refuses it, naming the largest file.
  try {
    await checkpoint(manifests, undefined, 200 * 1024);
    assert.unreachable('over the budget');
  } catch (err) {
    assert.match((err as Error).message, /holds 307230 bytes \(its largest file, "big", holds 307200 bytes\)/);
  }

  // A change is read, through the per-entry rule.
  writeFileSync(path.join(mount, 'd/f1'), 'changed');
  const third = await checkpoint(manifests);
  assert.is(third.capture.filesRead, 1);
  assert.is.not(third.capture.manifest, second.capture.manifest);
});

test.run();
