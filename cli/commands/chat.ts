/**
 * `director chat AGENT`: talk to an agent. At a terminal it is a conversation: each line typed is
 * a message, the answer streams in as it is written, tool calls are shown as they start and end,
 * and a call that needs approval asks `y/N` (or is approved at once with `--yes`). With standard
 * input not a terminal, it sends one message (all of stdin, or `-m`) and prints the answer; a
 * call that needs approval is then denied unless `--yes` was given (nobody is there to ask).
 */
import { createInterface, type Interface } from 'node:readline';
import type { Command } from 'commander';
import { DirectorApiError, type ChatDone, type ChatEvent, type DirectorClient } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { CliError, describeError, UsageError } from '../errors.ts';
import { duration, serialize } from '../output.ts';
import { readStdin } from '../prompt.ts';

interface ChatOptions {
  session?: string;
  message?: string;
  yes?: boolean;
}

/** Reads lines one at a time (the user's messages and the y/N answers share the one input). */
class Lines {
  readonly #rl: Interface;
  readonly #queue: string[] = [];
  #closed = false;
  #wake: (() => void) | null = null;

  constructor(rl: Interface) {
    this.#rl = rl;
    rl.on('line', (l) => {
      this.#queue.push(l);
      this.#wake?.();
    });
    rl.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  /** The next line typed after `prompt`, or null once the input is closed (Ctrl-D, Ctrl-C). */
  async ask(prompt: string): Promise<string | null> {
    this.#rl.setPrompt(prompt);
    this.#rl.prompt();
    for (;;) {
      const line = this.#queue.shift();
      if (line !== undefined) return line;
      if (this.#closed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }
}

/** Whether a conversation at the terminal goes on after `err`: the turn failed, or the API refused the message with 409 or 503. */
const keepsConversation = (err: unknown): boolean =>
  err instanceof CliError ? err.code !== 'CONNECTION_ERROR' : err instanceof DirectorApiError && (err.status === 409 || err.status === 503);

const compact = (v: unknown, max = 200) => {
  const s = JSON.stringify(v) ?? '';
  return s.length > max ? `${s.slice(0, max)}…` : s;
};

/**
 * Runs one turn, printing it: the answer on stdout (unless `quiet`), tool calls on stderr.
 * `decide` answers each approval. Returns the `done` data; an `error` event is thrown.
 */
async function turn(
  ctx: Context,
  client: DirectorClient,
  body: { agent: string; message: string; sessionId?: string },
  decide: (e: Extract<ChatEvent, { type: 'tool_approval' }>['data']) => Promise<{ approve: boolean; reason?: string }>,
  quiet: boolean,
  signal: AbortSignal,
): Promise<ChatDone> {
  let midLine = false;
  const newline = () => {
    if (midLine) ctx.out('\n');
    midLine = false;
  };
  for await (const e of client.chat.stream(body, { signal })) {
    switch (e.type) {
      case 'content':
        if (quiet) break;
        ctx.out(e.data.text);
        midLine = !e.data.text.endsWith('\n');
        break;
      case 'thinking':
      case 'usage':
        break;
      case 'tool_start':
        newline();
        ctx.note(`» ${e.data.tool} ${compact(e.data.input)}`);
        break;
      case 'tool_approval': {
        newline();
        const d = await decide(e.data);
        if (d.approve) await client.chat.approvals.approve(e.data.approvalId, { inputHash: e.data.inputHash });
        else
          await client.chat.approvals.deny(e.data.approvalId, { inputHash: e.data.inputHash, ...(d.reason ? { reason: d.reason } : {}) });
        break;
      }
      case 'tool_end': {
        newline();
        const facts = [e.data.exitCode !== undefined ? `exit ${e.data.exitCode}` : null, duration(e.data.durationMs)].filter(Boolean);
        ctx.note(`« ${e.data.tool} ${e.data.status} (${facts.join(', ')})${e.data.error ? `: ${e.data.error.slice(0, 300)}` : ''}`);
        break;
      }
      case 'done':
        newline();
        return e.data;
      case 'error':
        newline();
        throw new CliError(e.data.code, e.data.message);
    }
  }
  throw new CliError('CONNECTION_ERROR', 'the chat stream ended before the turn did');
}

export function registerChat(program: Command, ctx: Context): void {
  program
    .command('chat')
    .description('Chat with an agent: its answer streams in, tool calls are shown, approvals are asked y/N')
    .argument('<agent>', 'agent id (agt_...) or name')
    .option('--session <id>', "the agent's session (default: the one of its department)")
    .option('-m, --message <text>', 'send this one message and print the answer (no conversation)')
    .option('-y, --yes', 'approve every tool call that needs approval without asking')
    .addHelpText(
      'after',
      '\nAt a terminal: type a message and Enter; Ctrl-D ends the conversation. Approvals ask "[y/N]".\n' +
        'Not at a terminal (or with -m): one message from stdin (or -m), the answer on stdout, tool calls on stderr;\n' +
        "tool calls needing approval are denied unless --yes. -o json|yaml prints the turn's result instead of streaming.",
    )
    .action(async (agent: string, o: ChatOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const ac = new AbortController();
      const offTerm = ctx.io.onSignal('SIGTERM', () => ac.abort());
      let sessionId = o.session;
      try {
        if (o.message !== undefined || !ctx.io.stdin.isTTY) {
          const message = o.message ?? (await readStdin(ctx.io.stdin));
          if (!message.trim()) throw new UsageError('no message: pass -m TEXT or write it to standard input');
          const offInt = ctx.io.onSignal('SIGINT', () => ac.abort());
          try {
            const done = await turn(
              ctx,
              client,
              { agent, message, ...(sessionId ? { sessionId } : {}) },
              async (a) => {
                if (o.yes) {
                  ctx.note(`director: approved ${a.tool} (--yes)`);
                  return { approve: true };
                }
                ctx.note(`director: denied ${a.tool}: it needs approval and there is no terminal to ask (use --yes)`);
                return { approve: false, reason: 'no terminal to ask for approval' };
              },
              g.output !== 'table',
              ac.signal,
            );
            if (g.output !== 'table') ctx.out(serialize(g.output, done));
          } finally {
            offInt();
          }
          return;
        }
        const rl = createInterface({ input: ctx.io.stdin, output: ctx.io.stdout, terminal: true });
        const lines = new Lines(rl);
        rl.on('SIGINT', () => rl.close());
        ctx.note(`director: chatting with ${agent}; Ctrl-D to end`);
        try {
          for (;;) {
            const line = await lines.ask('> ');
            if (line === null) break;
            if (!line.trim()) continue;
            try {
              const done = await turn(
                ctx,
                client,
                { agent, message: line, ...(sessionId ? { sessionId } : {}) },
                async (a) => {
                  if (o.yes) {
                    ctx.note(`director: approved ${a.tool} (--yes)`);
                    return { approve: true };
                  }
                  const answer = await lines.ask(`Allow ${a.tool} ${compact(a.input)}? [y/N] `);
                  const yes = answer !== null && /^\s*y(es)?\s*$/i.test(answer);
                  return yes ? { approve: true } : { approve: false, reason: 'denied at the terminal' };
                },
                false,
                ac.signal,
              );
              sessionId = done.sessionId;
            } catch (err) {
              // A failed turn, or a message the API refused for now (409: a turn is in progress;
              // 503: no provider, or it failed), is one error line and the prompt comes back;
              // a lost connection (or any other refusal) ends the conversation.
              if (!keepsConversation(err)) throw err;
              ctx.note(describeError(err).line);
            }
          }
        } finally {
          rl.close();
        }
        if (sessionId) ctx.note(`director: session ${sessionId}`);
      } finally {
        offTerm();
      }
    });
}
