/**
 * The `director` command tree. Each area registers its commands from its own module
 * (cli/commands/*.ts); a new area is one more module and one more line in {@link AREAS}.
 */
import { Command, Option } from 'commander';
import type { Context } from './context.ts';
import { complete, completionScript, SHELLS, type IdKind } from './completion.ts';
import { registerAudit } from './commands/audit.ts';
import { registerAuth } from './commands/auth.ts';
import { registerChat } from './commands/chat.ts';
import { registerEvents } from './commands/events.ts';
import { registerNetwork } from './commands/network.ts';
import { registerSandbox } from './commands/sandbox.ts';
import { registerSession } from './commands/session.ts';
import { registerWorkflow } from './commands/workflow.ts';
import { FORMATS } from './output.ts';

export const VERSION = '0.1.0';

/** Command areas, in the order `--help` lists them. */
const AREAS: ((program: Command, ctx: Context) => void)[] = [
  registerAuth,
  registerSandbox,
  registerNetwork,
  registerEvents,
  registerAudit,
  registerSession,
  registerWorkflow,
  registerChat,
];

/** How long completion waits for the server's ids before offering none. */
const COMPLETION_TIMEOUT_MS = 2000;

export function buildProgram(ctx: Context): Command {
  const program = new Command('director')
    .description('Director: sandboxes, network policies, security events, sessions, workflows and agents from the terminal')
    .version(VERSION, '-V, --version')
    .option('--url <url>', 'API address (env DIRECTOR_URL; default: the one logged in to)')
    .option('--workspace <workspace>', 'workspace id or name to act in (env DIRECTOR_WORKSPACE)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(FORMATS).default('table'))
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .addHelpText(
      'after',
      "\nExit status: 0 success, 1 the API refused or failed (the error line names its code), 2 usage error.\n`sandbox exec` and `sandbox shell` exit with the command's own status; `workflow run` exits 1 unless the run completed.",
    );
  for (const register of AREAS) register(program, ctx);

  program
    .command('completion')
    .description('Print a shell completion script: source <(director completion bash)')
    .argument('<shell>', SHELLS.join(', '))
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) {
        program.error(`error: unknown shell '${shell}' (${SHELLS.join(', ')})`, { exitCode: 2, code: 'director.usage' });
      }
      ctx.out(completionScript(shell as (typeof SHELLS)[number]));
    });

  program
    .command('__complete', { hidden: true })
    .argument('[words...]')
    .action(async (words: string[], _o: unknown, cmd: Command) => {
      const listIds = async (kind: IdKind): Promise<string[]> => {
        try {
          const client = ctx.client(ctx.globals(cmd));
          const lists: Record<IdKind, () => Promise<{ items: { id: string }[] }>> = {
            sandbox: () => client.sandboxes.list({ limit: 100 }),
            network: () => client.networks.list({ limit: 100 }),
            session: () => client.sessions.list({ limit: 100 }),
            workflow: () => client.workflows.list({ limit: 100 }),
          };
          const ids = lists[kind]().then((p) => p.items.map((x) => x.id));
          const timeout = new Promise<string[]>((resolve) => setTimeout(() => resolve([]), COMPLETION_TIMEOUT_MS).unref());
          return await Promise.race([ids, timeout]);
        } catch {
          return [];
        }
      };
      const out = await complete(program, words.length ? words : [''], listIds);
      if (out.length) ctx.out(`${out.join('\n')}\n`);
    });
  return program;
}
