import { DirectorApiError } from '../sdk/index.ts';

/**
 * Exit codes scripts can rely on: 0 success, 1 the API (or the sandbox, the network) refused or
 * failed, 2 the command line was wrong. `sandbox exec` and `sandbox shell` exit with the
 * command's own status instead.
 */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;

/** A mistake on the command line (exit 2), found after parsing (a missing login, a bad flag value). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure that is neither the API's nor a usage error (a broken audit chain, a local file), exit 1. */
export class CliError extends Error {
  override name = 'CliError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

/** The one line printed for an error, and the exit code it means. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof DirectorApiError) {
    const req = err.requestId ? ` (request ${err.requestId})` : '';
    return { line: `error: ${err.code}: ${oneLine(err.message)}${req}`, exitCode: EXIT.FAILED };
  }
  if (err instanceof UsageError) return { line: `error: ${oneLine(err.message)}`, exitCode: EXIT.USAGE };
  if (err instanceof CliError) return { line: `error: ${err.code}: ${oneLine(err.message)}`, exitCode: EXIT.FAILED };
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? `${e.code}: ` : '';
  return { line: `error: ${code}${oneLine(String(e.message ?? err))}`, exitCode: EXIT.FAILED };
}
