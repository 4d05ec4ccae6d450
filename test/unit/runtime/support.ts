/** Shared fixtures for the runtime unit tests (not a test file: the runner only runs `*.test.ts`). */
import tarStream from 'tar-stream';
import * as assert from 'uvu/assert';
import { loadConfig, type Config } from '../../../runtime/config.ts';
import { DirectorError } from '../../../core/errors.ts';

/** The default configuration, with nothing read from the real environment. */
export const defaultConfig = (overrides: Partial<Config> = {}): Config => loadConfig({}, { dataDir: '/tmp/x', ...overrides });

/** Runs `fn`, asserts it throws a DirectorError, and returns that error. */
export function directorErrorOf(fn: () => unknown): DirectorError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, DirectorError);
    return err as DirectorError;
  }
  assert.unreachable('expected a DirectorError');
  throw new Error('unreachable');
}

/** An entry for {@link tarBytes}: a header as tar-stream's pack takes it, and content (none: an empty entry). */
export type TarSpec = [Partial<tarStream.Header> & { name: string }, (string | Buffer)?];

/** The bytes of an archive tar-stream's pack writes for `specs`. */
export async function tarBytes(specs: TarSpec[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [h, body] of specs) {
    if (body === undefined) pack.entry(h).end(null);
    else pack.entry(h, body);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
