/** `director events ...`: the security event stream, stored and live. */
import { createWriteStream } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { ChannelMessage, EventsQuery, SecurityEvent, Severity } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { cell, streamItem } from '../output.ts';
import { collect, positiveInt, sinceTime } from '../parse.ts';

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;

interface FilterOptions {
  severity?: string;
  minSeverity?: string;
  type?: string[];
  sandbox?: string;
  network?: string;
}

const checkSeverity = (flag: string, v: string | undefined): Severity | undefined => {
  if (v === undefined) return undefined;
  if (!(SEVERITIES as readonly string[]).includes(v)) throw new UsageError(`${flag} must be one of ${SEVERITIES.join(', ')}`);
  return v as Severity;
};

/** The filters as the API's query parameters. */
export function filterQuery(o: FilterOptions): EventsQuery {
  const severity = checkSeverity('--severity', o.severity);
  const minSeverity = checkSeverity('--min-severity', o.minSeverity);
  return {
    ...(severity ? { severity } : {}),
    ...(minSeverity ? { minSeverity } : {}),
    ...(o.type?.length ? { type: o.type.length === 1 ? o.type[0]! : o.type } : {}),
    ...(o.sandbox ? { sandboxId: o.sandbox } : {}),
    ...(o.network ? { networkId: o.network } : {}),
  };
}

/** The same filters applied to live events (the hub sends every event of the channel). */
export function matches(e: SecurityEvent, q: EventsQuery): boolean {
  if (q.severity && e.severity !== q.severity) return false;
  if (q.minSeverity && SEVERITIES.indexOf(e.severity) < SEVERITIES.indexOf(q.minSeverity)) return false;
  if (q.type !== undefined && !([] as string[]).concat(q.type).includes(e.type)) return false;
  if (q.sandboxId && e.sandboxId !== q.sandboxId) return false;
  if (q.networkId && e.networkId !== q.networkId) return false;
  return true;
}

/**
 * A live message as an event: `security_event` carries one; `security_alert` carries the alert
 * only (the Director Protocol's shape), shown as an event of that type.
 */
export function eventOfMessage(m: ChannelMessage): SecurityEvent | null {
  if (m.type === 'security_event') return m.data as SecurityEvent;
  if (m.type !== 'security_alert') return null;
  const alert = (m.data as { alert: { severity: string; timestamp: string } }).alert;
  return {
    id: '',
    seq: m.cursor,
    type: 'security_alert',
    severity: (SEVERITIES as readonly string[]).includes(alert.severity) ? (alert.severity as Severity) : 'high',
    timestamp: alert.timestamp,
    workspace: null,
    sandboxId: null,
    networkId: null,
    sessionId: null,
    actor: null,
    details: { alert },
  };
}

const WIDTHS = [24, 8, 24, 21] as const;
const row = (cols: string[]) =>
  cols
    .map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c))
    .join(' ')
    .trimEnd();
export const EVENT_HEADER = row(['TIME', 'SEVERITY', 'TYPE', 'SANDBOX', 'DETAILS']);
export const eventRow = (e: SecurityEvent): string =>
  row([e.timestamp, e.severity, e.type, e.sandboxId ?? e.networkId ?? '-', Object.keys(e.details).length ? cell(e.details) : '-']);

interface TailOptions extends FilterOptions {
  follow?: boolean;
  lines: string;
  since: string;
}

export function registerEvents(program: Command, ctx: Context): void {
  const events = program.command('events').description('Security events: the one stream of what Director refused, noticed and did');
  const filters = (c: Command) =>
    c
      .option('--severity <level>', `only this severity (${SEVERITIES.join(', ')})`)
      .option('--min-severity <level>', 'only this severity and above')
      .option('--type <type>', 'only this event type (repeatable)', collect)
      .option('--sandbox <id>', 'only events of this sandbox')
      .option('--network <id>', 'only events of this network');

  filters(
    events
      .command('tail')
      .description('Show the newest events; with -f keep following live (resumes after a dropped connection)')
      .option('-f, --follow', 'keep printing new events as they happen, until interrupted')
      .option('-n, --lines <count>', 'how many of the newest stored events to show first', '20')
      .option('--since <time>', 'look back this far for them (1h, 7d, or an ISO time)', '24h'),
  ).action(async (o: TailOptions, cmd: Command) => {
    const g = ctx.globals(cmd);
    const q = filterQuery(o);
    const n = positiveInt('--lines', o.lines);
    const since = sinceTime('--since', o.since);
    const client = ctx.client(g);
    const print = (e: SecurityEvent) => ctx.out(streamItem(g.output, e, () => eventRow(e)));
    // The newest `n` stored events: page through the window, keeping the last n.
    const recent: SecurityEvent[] = [];
    let cursor: string | null = null;
    for (let after: string | undefined; ;) {
      const page = await client.events.list({ ...q, since, limit: 1000, ...(after ? { after } : {}) });
      for (const e of page.items) {
        recent.push(e);
        if (recent.length > n) recent.shift();
      }
      cursor = page.nextCursor ?? cursor;
      if (!page.hasMore || !page.nextCursor) break;
      after = page.nextCursor;
    }
    if (g.output === 'table') ctx.out(`${EVENT_HEADER}\n`);
    recent.forEach(print);
    if (!o.follow) return;
    // Live from the last stored event shown: the hub replays what came after it, so nothing is missed in between.
    const sub = client.events.subscribe({ channels: ['security'], ...(cursor !== null ? { after: Number(cursor) } : {}) });
    const tty = ctx.io.stderr.isTTY;
    sub.onStatus((s) => {
      if (!tty) return;
      if (s.state === 'reconnecting' && s.error) ctx.note(`director: connection lost (${s.error.message}); reconnecting`);
      if (s.state === 'live' && s.attempt === 0) ctx.note('director: following live events (Ctrl-C to stop)');
    });
    sub.on('*', (m) => {
      const e = eventOfMessage(m);
      if (e && matches(e, q)) print(e);
    });
    const offInt = ctx.io.onSignal('SIGINT', () => sub.close());
    const offTerm = ctx.io.onSignal('SIGTERM', () => sub.close());
    try {
      await sub.done;
    } finally {
      offInt();
      offTerm();
    }
  });

  filters(
    events
      .command('export')
      .description('Export events as NDJSON (one per line, with its OCSF mapping) to stdout or a file')
      .option('--since <time>', 'from this time (1h, 7d, or an ISO time)')
      .option('--until <time>', 'up to this time (exclusive)')
      .option('--file <path>', 'write to this file instead of stdout'),
  ).action(async (o: FilterOptions & { since?: string; until?: string; file?: string }, _cmd: Command) => {
    const g = ctx.globals(_cmd);
    const q = {
      ...filterQuery(o),
      ...(o.since ? { since: sinceTime('--since', o.since) } : {}),
      ...(o.until ? { until: sinceTime('--until', o.until) } : {}),
    };
    const client = ctx.client(g);
    const body = await client.events.export(q);
    const sink: Writable = o.file ? createWriteStream(o.file, { mode: 0o600 }) : ctx.io.stdout;
    await ctx.progress(`Exporting events${o.file ? ` to ${o.file}` : ''}`, () =>
      pipeline(Readable.fromWeb(body as Parameters<typeof Readable.fromWeb>[0]), sink, { end: Boolean(o.file) }),
    );
  });
}
