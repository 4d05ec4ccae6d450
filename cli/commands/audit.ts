/** `director audit ...`: the hash-chained audit log. */
import type { Command } from 'commander';
import type { AuditEntry, AuditQuery } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import { printList, printObject, type Column } from '../output.ts';
import { positiveInt, sinceTime } from '../parse.ts';

const OUTCOMES = ['success', 'denied', 'error'];

const COLUMNS: Column<AuditEntry>[] = [
  { header: 'seq', value: (e) => e.seq },
  { header: 'time', value: (e) => e.ts },
  { header: 'actor', value: (e) => e.username ?? e.actor },
  { header: 'action', value: (e) => e.action },
  { header: 'target', value: (e) => e.target },
  { header: 'outcome', value: (e) => e.outcome },
  { header: 'status', value: (e) => e.status },
];

export function registerAudit(program: Command, ctx: Context): void {
  const audit = program.command('audit').description('The audit log: every mutating request and refusal, hash-chained');

  audit
    .command('verify')
    .description('Verify the whole hash chain; exits 1 when an entry was edited, deleted or reordered')
    .action(async (_o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const v = await ctx.progress('Verifying the audit chain', () => ctx.client(g).audit.verify());
      if (g.output !== 'table' || v.ok) {
        printObject(ctx.io.stdout, g.output, v, [
          ['Chain', v.ok ? 'ok' : 'BROKEN'],
          ['Entries', v.entries],
          ['Head', v.head],
        ]);
      }
      if (!v.ok) {
        const at = v.brokenAt ? ` at seq ${v.brokenAt.seq} (${v.brokenAt.id})` : '';
        throw new CliError('AUDIT_CHAIN_BROKEN', `the audit chain is broken${at}: ${v.reason ?? 'unknown reason'}`);
      }
    });

  audit
    .command('ls')
    .alias('list')
    .description('List audit entries, oldest first')
    .option('--actor <actor>', 'only this actor (a user id also matches their API keys)')
    .option('--action <action>', 'only this action, e.g. "POST /v1/sandboxes"')
    .option('--outcome <outcome>', `only this outcome (${OUTCOMES.join(', ')})`)
    .option('--target <id>', 'only entries about this resource')
    .option('--since <time>', 'from this time (1h, 7d, or an ISO time)')
    .option('--after <seq>', 'after this sequence number (the last one you saw)')
    .option('--limit <n>', 'at most this many', '50')
    .action(
      async (
        o: { actor?: string; action?: string; outcome?: string; target?: string; since?: string; after?: string; limit: string },
        cmd: Command,
      ) => {
        const g = ctx.globals(cmd);
        if (o.outcome && !OUTCOMES.includes(o.outcome)) throw new UsageError(`--outcome must be one of ${OUTCOMES.join(', ')}`);
        const query: AuditQuery = {
          limit: Math.min(positiveInt('--limit', o.limit), 500),
          ...(o.actor ? { actor: o.actor } : {}),
          ...(o.action ? { action: o.action } : {}),
          ...(o.outcome ? { outcome: o.outcome as AuditQuery['outcome'] } : {}),
          ...(o.target ? { target: o.target } : {}),
          ...(o.since ? { since: sinceTime('--since', o.since) } : {}),
          ...(o.after ? { after: Number(o.after) } : {}),
        };
        const page = await ctx.client(g).audit.list(query);
        printList(ctx.io.stdout, g.output, page.items, COLUMNS, page);
      },
    );
}
