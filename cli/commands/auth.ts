/** `login`, `logout`, `whoami` and `workspace`: who the CLI acts as, and where. */
import type { Command } from 'commander';
import { DirectorClient, type Me } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { printObject } from '../output.ts';
import { promptPassword, readStdin } from '../prompt.ts';

interface LoginOptions {
  username?: string;
  passwordStdin?: boolean;
}

const meFields = (me: Me, url: string, via: string): [string, unknown][] => [
  ['URL', url],
  ['User', me.username ?? me.userId],
  ['User ID', me.userId],
  ['Workspace', me.workspace],
  ['Role', me.role],
  ['Credentials', via],
  ['Scopes', me.scopes],
];

export function registerAuth(program: Command, ctx: Context): void {
  program
    .command('login')
    .description('Log in with a username and password; the tokens are stored in ~/.config/director/config.json (mode 0600)')
    .option('--username <name>', 'user to log in as (default: the last one)')
    .option('--password-stdin', 'read the password from standard input (default: ask at the terminal)')
    .addHelpText(
      'after',
      '\nWith --url (or DIRECTOR_URL) the server; --workspace picks one of your workspaces.\nAn API key needs no login: set DIRECTOR_URL and DIRECTOR_API_KEY.',
    )
    .action(async (opts: LoginOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const stored = ctx.config();
      const url = ctx.url(g);
      const username = opts.username ?? stored.username;
      if (!username) throw new UsageError('--username is required');
      const password = opts.passwordStdin
        ? await readStdin(ctx.io.stdin)
        : await promptPassword(ctx.io.stdin, ctx.io.stderr, `Password for ${username}: `);
      if (!password) throw new UsageError('empty password');
      const client = new DirectorClient({ baseURL: url });
      const tokens = await ctx.progress('Logging in', () =>
        client.auth.login({ username, password, ...(g.workspace ? { workspace: g.workspace } : {}) }),
      );
      ctx.saveConfig({
        url,
        username,
        ...(g.workspace ? { workspace: tokens.workspace } : {}),
        token: tokens.token,
        tokenExpiresAt: tokens.expiresAt,
        refreshToken: tokens.refreshToken,
        refreshExpiresAt: tokens.refreshExpiresAt,
      });
      ctx.note(`Logged in to ${url} as ${username} (workspace ${tokens.workspace}).`);
    });

  program
    .command('logout')
    .description('Revoke the stored session and forget its tokens')
    .action(async (_opts: unknown, cmd: Command) => {
      const cfg = ctx.config();
      if (cfg.token) {
        // Best effort: the tokens are forgotten here even when the server cannot be told.
        await ctx
          .client(ctx.globals(cmd))
          .auth.logout()
          .catch(() => undefined);
      }
      const { token: _t, tokenExpiresAt: _e, refreshToken: _r, refreshExpiresAt: _re, ...rest } = cfg;
      ctx.saveConfig(rest);
      ctx.note('Logged out.');
    });

  program
    .command('whoami')
    .description('Show the user, workspace, role and scopes the CLI acts as')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const me = await ctx.client(g).auth.me();
      const via = ctx.io.env.DIRECTOR_API_KEY ? 'API key (DIRECTOR_API_KEY)' : 'login';
      printObject(ctx.io.stdout, g.output, { ...me, url: ctx.url(g) }, meFields(me, ctx.url(g), via));
    });

  const ws = program.command('workspace').description('Show, choose or create workspaces');
  ws.command('show', { isDefault: true })
    .description('Show the workspace commands act in')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const me = await ctx.client(g).auth.me();
      printObject(ctx.io.stdout, g.output, { workspace: me.workspace, role: me.role }, [
        ['Workspace', me.workspace],
        ['Role', me.role],
      ]);
    });
  ws.command('use')
    .description('Act in WORKSPACE (id or name) from now on; you must be a member')
    .argument('<workspace>', 'workspace id or name')
    .action(async (workspace: string, _opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      // Asking the server as that workspace proves membership and resolves a name to its id.
      const me = await ctx.client({ ...g, workspace }).auth.me();
      ctx.saveConfig({ ...ctx.config(), workspace: me.workspace });
      ctx.note(`Now acting in workspace ${me.workspace} (role ${me.role}).`);
    });
  ws.command('create')
    .description('Create a workspace (admins); you become its admin')
    .argument('<name>', 'workspace name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const created = await ctx.client(g).auth.createWorkspace(name);
      printObject(ctx.io.stdout, g.output, created, [
        ['ID', created.id],
        ['Name', created.name],
        ['Created', created.createdAt],
      ]);
    });
}
