/** Reading secrets: a password typed at a terminal (not echoed), or the whole of standard input. */
import { UsageError } from './errors.ts';

/** Everything on standard input as text, without the trailing newline. */
export async function readStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks for a password on the terminal with echo off; Ctrl-C or Ctrl-D abort. */
export async function promptPassword(stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream, question: string): Promise<string> {
  if (!stdin.isTTY) throw new UsageError('no terminal to ask for the password: use --password-stdin');
  // Echo off before the question appears: whoever answers it as soon as they see it (a person
  // typing ahead, a script driving the terminal) must never have the password echoed.
  stdin.setRawMode(true);
  stderr.write(question);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            resolve(typed);
            return;
          }
          if (ch === '\u0003' || ch === '\u0004') {
            stdin.off('data', onData);
            reject(new UsageError('password entry aborted'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
          else typed += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    stderr.write('\n');
  }
}
