/**
 * `director sandbox shell ID`: an interactive terminal over the API's terminal socket. The local
 * terminal goes into raw mode, so every key (Ctrl-C, Ctrl-Z, arrows) reaches the sandbox's shell
 * and nothing is echoed twice, and its output is shown as the sandbox's pty wrote it (no second
 * \n → \r\n); window size changes are sent as resizes. The shell's exit status
 * is the command's.
 */
import type { Command } from 'commander';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { verbatimOutput } from '../tty.ts';

/** End of input at the start of a line: the shell's exit, when local input is a pipe that ended. */
const EOT = '\u0004';

export function registerShell(sandbox: Command, ctx: Context): void {
  sandbox
    .command('shell')
    .description('Open an interactive shell in a sandbox (raw terminal: Ctrl-C goes to the sandbox; `exit` ends it)')
    .argument('<id>', 'sandbox id')
    .option('--shell <name>', 'sh or bash', 'sh')
    .action(async (id: string, o: { shell: string }, cmd: Command) => {
      if (o.shell !== 'sh' && o.shell !== 'bash') throw new UsageError('--shell must be sh or bash');
      const g = ctx.globals(cmd);
      const { stdin, stdout } = ctx.io;
      const size = () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 });
      const term = await ctx
        .client(g)
        .sandboxes.ref(id)
        .terminal({ shell: o.shell, ...(stdout.isTTY ? size() : {}) });
      term.onData((bytes) => stdout.write(bytes));
      const raw = stdin.isTTY;
      if (raw) stdin.setRawMode(true);
      // The sandbox's pty already ended its lines with \r\n: shown as they come, not translated again.
      const restoreOutput = verbatimOutput(stdout);
      const onInput = (b: Buffer) => term.write(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
      const onEnd = () => term.write(EOT);
      stdin.on('data', onInput);
      stdin.once('end', onEnd);
      stdin.resume();
      const offWinch = ctx.io.onSignal('SIGWINCH', () => {
        const s = size();
        term.resize(s.cols, s.rows);
      });
      try {
        ctx.exitCode = (await term.exited) ?? 0;
      } finally {
        offWinch();
        stdin.off('data', onInput);
        stdin.off('end', onEnd);
        if (raw) stdin.setRawMode(false);
        restoreOutput();
        stdin.pause();
      }
    });
}
