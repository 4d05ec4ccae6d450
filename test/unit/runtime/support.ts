/** Shared fixtures for the runtime unit tests (not a test file: the runner only runs `*.test.ts`). */
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
