/** `director network ...`: networks, isolation, and policies applied kubectl-style. */
import type { Command } from 'commander';
import type { NetworkInfo, NetworkPolicy, PolicyInForce, PolicyTestRequest, PolicyVerdict, RuleInForce } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { age, bytes, fields, printList, printObject, serialize, table, type Column } from '../output.ts';
import { collect, endpoint, keyValues, positiveInt, type Endpoint } from '../parse.ts';
import { diffPolicy, stateInForce, stateOfPolicy } from '../policy-diff.ts';
import { readSpecFile } from './sandbox.ts';

const COLUMNS: Column<NetworkInfo>[] = [
  { header: 'id', value: (n) => n.id },
  { header: 'name', value: (n) => n.name },
  { header: 'subnet', value: (n) => n.subnet },
  { header: 'status', value: (n) => n.status },
  { header: 'isolated', value: (n) => n.isolated },
  { header: 'policy', value: (n) => policyName(n) },
  { header: 'age', value: (n) => age(n.createdAt) },
];

const policyName = (n: NetworkInfo): string | null => {
  const p = n.policy as { name?: unknown; mode?: unknown } | null;
  return p && typeof p.name === 'string' ? `${p.name}${p.mode === 'audit' ? ' (audit)' : ''}` : null;
};

const networkFields = (n: NetworkInfo): [string, unknown][] => {
  const inForce = (n.policyInForce ?? null) as PolicyInForce | null;
  return [
    ['ID', n.id],
    ['Name', n.name],
    ['Subnet', n.subnet],
    ['Gateway', n.gateway],
    ['Bridge', n.bridge],
    ['Status', n.status],
    ['DNS', n.enableDNS],
    ['Internal', n.internal],
    ['Isolated', n.isolated],
    ['Policy', policyName(n)],
    ['Rules in force', inForce ? `${inForce.outbound.length} outbound, ${inForce.inbound.length} inbound` : undefined],
    ['Sandboxes', n.sandboxes],
    ['Labels', Object.entries(n.labels).map(([k, v]) => `${k}=${v}`)],
    ['Created', n.createdAt],
  ];
};

const RULE_COLUMNS: Column<RuleInForce & { direction: string }>[] = [
  { header: 'direction', value: (r) => r.direction },
  { header: '#', value: (r) => r.index },
  { header: 'action', value: (r) => (r.audit ? `${r.action} (audit)` : r.action) },
  { header: 'proto', value: (r) => r.protocol },
  { header: 'source', value: (r) => r.source ?? 'any' },
  { header: 'destination', value: (r) => r.destination ?? 'any' },
  { header: 'port', value: (r) => (r.port === undefined ? 'any' : typeof r.port === 'number' ? r.port : `${r.port.from}-${r.port.to}`) },
  { header: 'packets', value: (r) => r.counter?.packets ?? '-' },
  { header: 'bytes', value: (r) => (r.counter ? bytes(r.counter.bytes) : '-') },
];

/** The kernel read-back as a readable summary and a rule table with counters. */
export function renderInForce(id: string, view: PolicyInForce | null): string {
  if (!view) return `network ${id}: no policy in force (nothing read back)\n`;
  const head = fields([
    ['Network', id],
    ['Mode', view.mode ?? 'no policy (allow all but the always-denied)'],
    ['Isolated', view.isolated],
    ['Logging', view.logging],
    ['Generation', view.generation],
    ['Allowed', view.counters.allowed ? `${view.counters.allowed.packets} packets, ${bytes(view.counters.allowed.bytes)}` : '-'],
    ['Denied', view.counters.denied ? `${view.counters.denied.packets} packets, ${bytes(view.counters.denied.bytes)}` : '-'],
  ]);
  const rows = [
    ...view.outbound.map((r) => ({ ...r, direction: 'outbound' })),
    ...view.inbound.map((r) => ({ ...r, direction: 'inbound' })),
  ];
  return `${head}\n${rows.length ? table(rows, RULE_COLUMNS) : 'No rules.\n'}`;
}

const PROTOCOLS = ['tcp', 'udp', 'icmp'] as const;

/** `--to`/`--from`, `--port`, `--proto` and `--sandbox-address` → the verdict endpoint's query. */
export function policyTestQuery(o: {
  to?: string;
  from?: string;
  port?: string;
  proto: string;
  sandboxAddress?: string;
}): PolicyTestRequest {
  if ((o.to === undefined) === (o.from === undefined))
    throw new UsageError('give exactly one of --to HOST[:PORT] (outbound) or --from ADDRESS (inbound)');
  const protocol = PROTOCOLS.find((p) => p === o.proto.toLowerCase());
  if (!protocol) throw new UsageError(`--proto must be one of ${PROTOCOLS.join(', ')} (got "${o.proto}")`);
  const far: Endpoint = o.to !== undefined ? endpoint('--to', o.to) : endpoint('--from', o.from!);
  if (o.from !== undefined && (far.host !== undefined || far.port !== undefined)) {
    throw new UsageError("--from takes an address only (the port is the sandbox's: give it with --port)");
  }
  const flagPort = o.port === undefined ? undefined : positiveInt('--port', o.port);
  if (flagPort !== undefined && far.port !== undefined && flagPort !== far.port)
    throw new UsageError(`--port ${flagPort} disagrees with --to ${o.to}`);
  const port = flagPort ?? far.port;
  if (protocol !== 'icmp' && port === undefined) throw new UsageError(`${protocol} needs a port: --to HOST:PORT or --port`);
  return {
    direction: o.to !== undefined ? 'outbound' : 'inbound',
    protocol,
    ...(far.address !== undefined ? { address: far.address } : {}),
    ...(far.host !== undefined ? { host: far.host } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(o.sandboxAddress !== undefined ? { sandboxAddress: o.sandboxAddress } : {}),
  };
}

/** A verdict as `LABEL   value` lines. */
export function verdictFields(v: PolicyVerdict): [string, unknown][] {
  const by = (d: PolicyVerdict['decidedBy']) => `${d.level} ${d.kind}${d.rule ? ` ${d.rule}` : d.guard ? ` ${d.guard}` : ''} (${d.tag})`;
  const r = v.resolver;
  return [
    ['Verdict', v.verdict],
    ['Passes', v.passes],
    ['Decided by', by(v.decidedBy)],
    ['Chain', v.chain],
    ['Address', v.address],
    [
      'Resolver',
      r ? `${r.answers ? 'answers' : 'refuses'}${r.reason ? `: ${r.reason}` : ''}${r.decidedBy ? ` (${by(r.decidedBy)})` : ''}` : undefined,
    ],
    ['Generation', v.generation],
  ];
}

export function registerNetwork(program: Command, ctx: Context): void {
  const network = program.command('network').alias('networks').description("Networks: bridges behind Director's nftables policies");

  network
    .command('create')
    .description('Create a network')
    .argument('<name>', 'name')
    .option('--subnet <cidr>', 'IPv4 subnet (default: allocated from the server pool)')
    .option('--gateway <ip>', 'gateway (default: the first host)')
    .option('--internal', 'no route out at all, whatever a policy allows')
    .option('--no-dns', 'no Director resolver on the gateway')
    .option('-l, --label <key=value>', 'label (repeatable)', collect)
    .option('-q, --quiet', 'print only the id')
    .action(
      async (
        name: string,
        o: { subnet?: string; gateway?: string; internal?: boolean; dns: boolean; label?: string[]; quiet?: boolean },
        cmd: Command,
      ) => {
        const g = ctx.globals(cmd);
        const labels = keyValues('--label', o.label);
        const client = ctx.client(g);
        const n = await ctx.progress('Creating network', () =>
          client.networks.create({
            name,
            ...(o.subnet ? { subnet: o.subnet } : {}),
            ...(o.gateway ? { gateway: o.gateway } : {}),
            ...(o.internal ? { internal: true } : {}),
            ...(o.dns ? {} : { enableDNS: false }),
            ...(labels ? { labels } : {}),
          }),
        );
        if (o.quiet) ctx.out(`${n.id}\n`);
        else printObject(ctx.io.stdout, g.output, n.info, networkFields(n.info));
      },
    );

  network
    .command('ls')
    .alias('list')
    .description('List networks, newest first')
    .action(async (_o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const items: NetworkInfo[] = [];
      for await (const n of ctx.client(g).networks.all()) items.push(n);
      printList(ctx.io.stdout, g.output, items, COLUMNS);
    });

  network
    .command('get')
    .description('Show a network, its policy in force (read back from the kernel) and its sandboxes')
    .argument('<id>', 'network id (net_...)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const n = await ctx.client(g).networks.get(id);
      printObject(ctx.io.stdout, g.output, n.info, networkFields(n.info));
    });

  network
    .command('rm')
    .alias('delete')
    .description('Delete networks (refused while sandboxes use them, unless --force)')
    .argument('<id...>', 'network ids')
    .option('--force', 'delete the sandboxes on the network first')
    .action(async (ids: string[], o: { force?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const done: { id: string; deleted: true }[] = [];
      for (const id of ids) {
        await ctx.progress(`Deleting ${id}`, () => client.networks.ref(id).delete({ force: o.force ?? false }));
        done.push({ id, deleted: true });
        if (g.output === 'table') ctx.out(`network ${id} deleted\n`);
      }
      if (g.output !== 'table') ctx.out(serialize(g.output, done));
    });

  for (const [verb, what] of [
    ['isolate', 'Isolate a network: drop everything in and out at once, established connections included'],
    ['release', 'Lift an isolation: the policy in force applies again'],
  ] as const) {
    network
      .command(verb)
      .description(what)
      .argument('<id>', 'network id')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const g = ctx.globals(cmd);
        const ref = ctx.client(g).networks.ref(id);
        const n = await ctx.progress(`${verb === 'isolate' ? 'Isolating' : 'Releasing'} ${id}`, () =>
          verb === 'isolate' ? ref.isolate() : ref.release(),
        );
        if (g.output === 'table') ctx.out(`network ${id} ${n.info.isolated ? 'isolated' : 'released'}\n`);
        else ctx.out(serialize(g.output, n.info));
      });
  }

  const policy = network.command('policy').description("A network's policy: apply one from a file, or read back the one in force");

  policy
    .command('apply')
    .description('Apply the policy in a file (JSON or YAML); prints what changed against the policy in force')
    .argument('<network>', 'network id')
    .requiredOption('-f, --file <file>', 'policy file (- for stdin)')
    .option('--dry-run', 'show what would change, apply nothing')
    .action(async (id: string, o: { file: string; dryRun?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const wanted = readSpecFile(o.file) as NetworkPolicy;
      if (typeof wanted.name !== 'string') throw new UsageError(`${o.file}: a policy needs a "name"`);
      const client = ctx.client(g);
      const before = await client.networks.get(id);
      const storedName = (n: NetworkInfo) => (n.policy as { name?: string } | null)?.name ?? null;
      const beforeState = stateInForce(before.policyInForce, storedName(before.info));
      if (o.dryRun) {
        const diff = diffPolicy(beforeState, stateOfPolicy(wanted));
        if (g.output !== 'table') ctx.out(serialize(g.output, { network: id, dryRun: true, ...diff }));
        else {
          ctx.out(`network ${id} policy "${wanted.name}" ${diff.changed ? 'would change (dry run):' : 'unchanged (dry run)'}\n`);
          for (const l of diff.lines) ctx.out(`  ${l}\n`);
        }
        if (before.info.isolated) ctx.note(`director: network ${id} is isolated: the policy takes effect when it is released`);
        return;
      }
      const after = await ctx.progress(`Applying policy to ${id}`, () => before.applyPolicy(wanted));
      // While isolated the kernel keeps the old rules until release: compare with what was stored.
      const afterState = after.info.isolated ? stateOfPolicy(wanted) : stateInForce(after.policyInForce, storedName(after.info));
      const diff = diffPolicy(beforeState, afterState);
      if (g.output !== 'table') ctx.out(serialize(g.output, { network: id, dryRun: false, ...diff, policyInForce: after.policyInForce }));
      else {
        ctx.out(`network ${id} policy "${wanted.name}" ${diff.changed ? 'configured' : 'unchanged'}\n`);
        for (const l of diff.lines) ctx.out(`  ${l}\n`);
      }
      if (after.info.isolated) ctx.note(`director: network ${id} is isolated: the policy takes effect when it is released`);
    });

  policy
    .command('get')
    .description('The policy in force, read back from the kernel: rules in order with their packet and byte counters')
    .argument('<network>', 'network id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const n = await ctx.client(g).networks.get(id);
      if (g.output === 'table') ctx.out(renderInForce(id, n.policyInForce));
      else ctx.out(serialize(g.output, n.policyInForce));
    });

  policy
    .command('test')
    .description('Would a connection get through? The verdict from the rules in force in the kernel; nothing is sent')
    .argument('<network>', 'network id')
    .option('--to <host[:port]>', 'outbound, from a sandbox of the network: the destination (address or host name) and port')
    .option('--from <address>', 'inbound, to a sandbox of the network: the source address (the port with --port)')
    .option('--port <port>', 'destination port (the same as :PORT of --to)')
    .option('--proto <protocol>', 'tcp, udp or icmp', 'tcp')
    .option('--sandbox-address <ip>', "the sandbox's own address, for rules restricted to some sandboxes")
    .action(async (id: string, o: { to?: string; from?: string; port?: string; proto: string; sandboxAddress?: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const query = policyTestQuery(o);
      const v = await ctx.client(g).networks.ref(id).testPolicy(query);
      printObject(ctx.io.stdout, g.output, v, verdictFields(v));
    });
}
