import { CommanderError } from 'commander';
import { AuthenticationError } from '../sdk/index.ts';
import { Context, type Io } from './context.ts';
import { EXIT, describeError } from './errors.ts';
import { buildProgram } from './program.ts';

/** Commander's ways of ending that are not failures. */
const CLEAN_EXITS = new Set(['commander.helpDisplayed', 'commander.version']);

/** Runs the CLI on `argv` (process.argv shape); resolves to the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const ctx = new Context(io);
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its one-line message (or the help) already.
      return CLEAN_EXITS.has(err.code) ? EXIT.OK : EXIT.USAGE;
    }
    const { line, exitCode } = describeError(err);
    const hint = err instanceof AuthenticationError && !io.env.DIRECTOR_API_KEY ? ' (log in again: director login)' : '';
    io.stderr.write(`${line}${hint}\n`);
    return exitCode;
  }
}

/** The real process as the CLI's {@link Io}. */
export function processIo(): Io {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    onSignal(signal, listener) {
      process.on(signal, listener);
      return () => process.off(signal, listener);
    },
  };
}
