/** Shared by the netfilter integration tests: root + nft detection and throwaway table names. */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Why these tests cannot run here, or null when they can (root and an nft binary). */
export function nftUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'nft is not installed';
}

/** A table name no one else uses; tests must delete it in their `after` hook. */
export const testTableName = (): string => `director_test_${randomBytes(4).toString('hex')}`;

export function tablesNow(): string[] {
  const r = spawnSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8' });
  const parsed = JSON.parse(r.stdout || '{"nftables":[]}') as { nftables: { table?: { family: string; name: string } }[] };
  return parsed.nftables.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : []));
}
