/** What checkpoint tests read of the blob store. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Runtime } from '../../runtime/runtime.ts';

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
