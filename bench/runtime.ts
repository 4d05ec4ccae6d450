/**
 * A runtime for a bench, on its own data directory, runtime name and nftables table (so it never
 * meets a server's or another bench's), logging nothing; `overrides` are the bench's settings.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../runtime/config.ts';
import { createRuntime, type Runtime } from '../runtime/runtime.ts';

export function benchRuntime(overrides: Partial<Config>, logger: Logger = pino({ level: 'silent' })): { rt: Runtime; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-bench-'));
  const name = `bench-${randomBytes(3).toString('hex')}`;
  const config = loadConfig(
    {},
    { dataDir: dir, runtimeName: name, nftTable: `director_b_${name.slice(6)}`, logLevel: 'silent', ...overrides },
  );
  return { rt: createRuntime({ config, logger }), dir };
}
