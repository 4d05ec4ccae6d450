/** `director session ...`: sessions, which own the sandboxes, agents and workflows made in them. */
import type { Command } from 'commander';
import type { CreateSessionRequest, SessionInfo } from '../../sdk/index.ts';
import { SESSION_STATES } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { age, duration, printList, printObject, serialize, type Column } from '../output.ts';
import { durationMs, positiveInt } from '../parse.ts';
import { readSpecFile } from './sandbox.ts';

const COLUMNS: Column<SessionInfo>[] = [
  { header: 'id', value: (s) => s.id },
  { header: 'name', value: (s) => s.name },
  { header: 'status', value: (s) => s.status },
  { header: 'tasks', value: (s) => s.metrics.totalTasks },
  { header: 'expires', value: (s) => s.expiresAt },
  { header: 'age', value: (s) => age(s.createdAt) },
];

export const sessionFields = (s: SessionInfo): [string, unknown][] => [
  ['ID', s.id],
  ['Name', s.name],
  ['Type', s.type],
  ['Description', s.description],
  ['Status', s.reason ? `${s.status} (${s.reason})` : s.status],
  ['Departments', s.metrics.activeDepartments],
  ['Tasks', s.metrics.totalTasks],
  ['Timeout', typeof s.config.timeout === 'number' ? duration(s.config.timeout) : undefined],
  ['Network', s.config.networkId],
  ['Environment', s.config.environmentId],
  ['Created', s.createdAt],
  ['Expires', s.expiresAt],
  ['Ended', s.endedAt],
];

interface CreateOptions {
  file?: string;
  description?: string;
  timeout?: string;
  network?: string;
  environment?: string;
  quiet?: boolean;
}

export function registerSession(program: Command, ctx: Context): void {
  const session = program
    .command('session')
    .alias('sessions')
    .description('Sessions: own the sandboxes, agents and workflows made in them, and end them together');

  session
    .command('create')
    .description('Create a session (active until it is ended, deleted, or its timeout passes)')
    .argument('[name]', 'name (default: the spec file\'s, else "cli")')
    .option('-f, --file <spec>', 'create request as JSON or YAML (- for stdin); flags override its fields')
    .option('--description <text>', 'description')
    .option('--timeout <duration>', 'lifetime from now (30m, 8h); default: the server default')
    .option('--network <id>', "network the session's sandboxes join when they name none")
    .option('--environment <id>', "environment the session's sandboxes are made from when they name none")
    .option('-q, --quiet', 'print only the id')
    .action(async (name: string | undefined, o: CreateOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const req = (o.file ? readSpecFile(o.file) : {}) as Partial<CreateSessionRequest>;
      const config = { ...req.config };
      if (o.timeout) config.timeout = durationMs('--timeout', o.timeout);
      if (o.network) config.networkId = o.network;
      if (o.environment) config.environmentId = o.environment;
      const body: CreateSessionRequest = {
        ...req,
        name: name ?? req.name ?? 'cli',
        ...(o.description ? { description: o.description } : {}),
        ...(Object.keys(config).length ? { config } : {}),
      };
      const s = await ctx.client(g).sessions.create(body);
      if (o.quiet) ctx.out(`${s.id}\n`);
      else printObject(ctx.io.stdout, g.output, s, sessionFields(s));
    });

  session
    .command('ls')
    .alias('list')
    .description('List sessions, newest first (all but terminated ones unless --status)')
    .option('--status <status>', `only in this state (${SESSION_STATES.join(', ')})`)
    .option('--limit <n>', 'at most this many', '50')
    .option('-A, --all', 'every page, not only the first --limit')
    .action(async (o: { status?: string; limit: string; all?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      if (o.status && !(SESSION_STATES as readonly string[]).includes(o.status))
        throw new UsageError(`--status must be one of ${SESSION_STATES.join(', ')}`);
      const limit = positiveInt('--limit', o.limit);
      const query = o.status ? { status: o.status as SessionInfo['status'] } : {};
      const client = ctx.client(g);
      let items: SessionInfo[];
      if (o.all) {
        items = [];
        for await (const s of client.sessions.all(query)) items.push(s);
      } else items = (await client.sessions.list({ ...query, limit: Math.min(limit, 500) })).items;
      printList(ctx.io.stdout, g.output, items, COLUMNS);
    });

  session
    .command('get')
    .description('Show a session: status, config, what it holds')
    .argument('<id>', 'session id (ses_...)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const s = await ctx.client(g).sessions.get(id);
      printObject(ctx.io.stdout, g.output, s, sessionFields(s));
    });

  session
    .command('end')
    .description('End sessions (completed): their sandboxes stop and their running work is cancelled; records stay readable')
    .argument('<id...>', 'session ids')
    .action(async (ids: string[], _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const done: SessionInfo[] = [];
      for (const id of ids) {
        const s = await ctx.progress(`Ending ${id}`, () => client.sessions.end(id));
        done.push(s);
        if (g.output === 'table') ctx.out(`session ${id} ${s.status}\n`);
      }
      if (g.output !== 'table') ctx.out(serialize(g.output, done));
    });

  session
    .command('rm')
    .alias('delete')
    .description('Delete sessions and everything they own (sandboxes, departments, agents, checkpoints)')
    .argument('<id...>', 'session ids')
    .action(async (ids: string[], _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const done: { id: string; deleted: true }[] = [];
      for (const id of ids) {
        await ctx.progress(`Deleting ${id}`, () => client.sessions.delete(id));
        done.push({ id, deleted: true });
        if (g.output === 'table') ctx.out(`session ${id} deleted\n`);
      }
      if (g.output !== 'table') ctx.out(serialize(g.output, done));
    });
}
