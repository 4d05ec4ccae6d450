/**
 * The orchestration services a checkpoint test needs, built on a test runtime the way the
 * composition root builds them (until it exists on this branch).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Runtime } from '../../runtime/runtime.ts';
import { ContextStore } from '../../orchestration/context/store.ts';
import { DepartmentStore } from '../../orchestration/departments/store.ts';
import { SessionService } from '../../orchestration/sessions/service.ts';
import { SessionStore } from '../../orchestration/sessions/store.ts';
import { createCheckpointService, type CheckpointService } from '../../orchestration/checkpoints/service.ts';

export interface Orchestration {
  sessions: SessionService;
  sessionStore: SessionStore;
  departmentStore: DepartmentStore;
  contextStore: ContextStore;
  checkpoints: CheckpointService;
}

export async function orchestrationFor(rt: Runtime): Promise<Orchestration> {
  const sessionStore = new SessionStore(rt.db);
  const departmentStore = new DepartmentStore(rt.db);
  const contextStore = new ContextStore(rt.db);
  const sessions = new SessionService({
    store: sessionStore,
    events: rt.events,
    clock: rt.clock,
    config: rt.config,
    logger: rt.logger,
    countDepartments: (id) => departmentStore.countOf(id),
    countTasks: () => 0,
  });
  const checkpoints = createCheckpointService({ runtime: rt, sessions, sessionStore, departmentStore, contextStore });
  await checkpoints.start();
  await sessions.start();
  return { sessions, sessionStore, departmentStore, contextStore, checkpoints };
}

/** Every stored checkpoint blob of a runtime: files under its data dir and rows of small content. */
export function blobDigests(rt: Runtime): Set<string> {
  const root = path.join(rt.config.dataDir, 'checkpoints', 'blobs');
  const files = existsSync(root) ? readdirSync(root).flatMap((shard) => readdirSync(path.join(root, shard))) : [];
  const rows = rt.db.sql.prepare('SELECT digest FROM checkpoint_chunks').all() as { digest: string }[];
  return new Set([...files, ...rows.map((r) => r.digest)]);
}

/** The content of every stored checkpoint blob. */
export function* blobContents(rt: Runtime): Generator<[string, Buffer]> {
  for (const d of blobDigests(rt)) {
    const row = rt.db.sql.prepare('SELECT content FROM checkpoint_chunks WHERE digest = ?').get(d) as { content: Uint8Array } | undefined;
    yield [d, row ? Buffer.from(row.content) : readFileSync(path.join(rt.config.dataDir, 'checkpoints', 'blobs', d.slice(0, 2), d))];
  }
}
