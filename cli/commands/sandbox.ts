/** `director sandbox ...`: create, list, inspect, stop, delete sandboxes and run commands in them. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { CreateSandboxRequest, ExecResult, SandboxInfo } from '../../sdk/index.ts';
import { SANDBOX_STATES } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { age, duration, printList, printObject, serialize, type Column } from '../output.ts';
import { collect, durationMs, keyValues, positiveInt, positiveNumber } from '../parse.ts';
import { registerCp } from './cp.ts';
import { registerShell } from './shell.ts';

const COLUMNS: Column<SandboxInfo>[] = [
  { header: 'id', value: (s) => s.id },
  { header: 'name', value: (s) => s.name },
  { header: 'image', value: (s) => s.image },
  { header: 'status', value: (s) => s.status },
  { header: 'network', value: (s) => s.networkId ?? s.networkMode },
  { header: 'age', value: (s) => age(s.createdAt) },
];

export const sandboxFields = (s: SandboxInfo): [string, unknown][] => [
  ['ID', s.id],
  ['Name', s.name],
  ['Image', s.image],
  ['Status', s.reason ? `${s.status} (${s.reason})` : s.status],
  ['Command', s.command?.join(' ')],
  ['Network', s.networkId ?? s.networkMode],
  ['IP', s.ipAddress],
  ['CPU', `${s.resourceLimits.cpu} cores`],
  ['Memory', `${s.resourceLimits.memory} MiB`],
  ['Disk', `${s.resourceLimits.disk} MiB`],
  ['Pids', s.resourceLimits.pids],
  ['Max duration', duration(s.resourceLimits.maxDuration)],
  ['Read-only root', s.securityPolicy.readOnlyRoot],
  ['Allow network', s.securityPolicy.allowNetwork],
  ['Allow exec', s.securityPolicy.allowExec],
  ['Writable paths', s.securityPolicy.allowedPaths],
  ['Environment', s.environmentKeys],
  ['Labels', Object.entries(s.labels).map(([k, v]) => `${k}=${v}`)],
  ['Exit code', s.exitCode],
  ['Created', s.createdAt],
  ['Expires', s.expiresAt],
];

/** A spec file (JSON or YAML; `-` is standard input) as an object. */
export function readSpecFile(file: string): Record<string, unknown> {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${file} is not valid JSON or YAML: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${file} must hold an object`);
  return value as Record<string, unknown>;
}

/** The exit status `sandbox exec` ends with: the command's, 124 when it timed out (as timeout(1) does). */
export function exitStatusOf(r: Pick<ExecResult, 'exitCode' | 'timedOut'>): number {
  if (r.timedOut) return 124;
  return r.exitCode >= 0 && r.exitCode <= 255 ? r.exitCode : 1;
}

interface CreateOptions {
  file?: string;
  name?: string;
  image?: string;
  cpu?: string;
  memory?: string;
  disk?: string;
  pids?: string;
  maxDuration?: string;
  env?: string[];
  label?: string[];
  network?: string;
  workdir?: string;
  profile?: string;
  writableRoot?: boolean;
  allowPath?: string[];
  exec?: boolean;
  idempotencyKey?: string;
  quiet?: boolean;
}

/** The create request: the spec file's, with each flag given on top. */
function createRequest(o: CreateOptions, command: string[]): CreateSandboxRequest {
  const req = (o.file ? readSpecFile(o.file) : {}) as CreateSandboxRequest;
  const limits = { ...req.resourceLimits };
  const policy = { ...req.securityPolicy };
  if (o.name) req.name = o.name;
  if (o.image) req.image = o.image;
  if (command.length) req.command = command;
  if (o.cpu) limits.cpu = positiveNumber('--cpu', o.cpu);
  if (o.memory) limits.memory = positiveInt('--memory', o.memory);
  if (o.disk) limits.disk = positiveInt('--disk', o.disk);
  if (o.pids) limits.pids = positiveInt('--pids', o.pids);
  if (o.maxDuration) limits.maxDuration = durationMs('--max-duration', o.maxDuration);
  const env = keyValues('--env', o.env);
  if (env) req.environment = { ...req.environment, ...env };
  const labels = keyValues('--label', o.label);
  if (labels) req.labels = { ...req.labels, ...labels };
  if (o.network) {
    req.networkMode = o.network;
    // A network is only attached when both say so (see docs/decisions.md).
    const on = o.network !== 'none';
    limits.network = on;
    policy.allowNetwork = on;
  }
  if (o.workdir) req.workdir = o.workdir;
  if (o.profile) req.profileId = o.profile;
  if (o.writableRoot) policy.readOnlyRoot = false;
  if (o.allowPath?.length) policy.allowedPaths = o.allowPath;
  if (o.exec === false) policy.allowExec = false;
  if (Object.keys(limits).length) req.resourceLimits = limits;
  if (Object.keys(policy).length) req.securityPolicy = policy;
  return req;
}

interface ExecOptions {
  env?: string[];
  workdir?: string;
  timeout?: string;
  stdin?: boolean;
}

async function readAll(stream: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(chunks).toString('utf8');
}

export function registerSandbox(program: Command, ctx: Context): void {
  const sandbox = program.command('sandbox').alias('sandboxes').description('Sandboxes: hardened containers to run code in');

  sandbox
    .command('create')
    .description('Create and start a sandbox (running when the command returns)')
    .argument('[command...]', 'main process (after --); default: the image keeps the sandbox alive')
    .option('-f, --file <spec>', 'create request as JSON or YAML (- for stdin); flags override its fields')
    .option('--name <name>', 'name')
    .option('--image <image>', 'image (default: the server default, director/base:latest)')
    .option('--cpu <cores>', 'CPU quota in cores')
    .option('--memory <MiB>', 'memory limit in MiB')
    .option('--disk <MiB>', 'size of the writable tmpfs mounts in MiB')
    .option('--pids <n>', 'process limit')
    .option('--max-duration <duration>', 'wall-time limit (30m, 2h); the sandbox is killed when it ends')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable; values are never shown again)', collect)
    .option('-l, --label <key=value>', 'label (repeatable)', collect)
    .option('--network <mode>', '`isolated` (own network), a network id (net_...), or `none` (default)')
    .option('--workdir <path>', 'working directory')
    .option('--profile <id>', 'security profile (prf_...) as the ceiling')
    .option('--writable-root', 'leave the image root writable (default: read-only)')
    .option('--allow-path <path>', 'writable path (repeatable; default /workspace)', collect)
    .option('--no-exec', 'refuse executes in this sandbox')
    .option('--idempotency-key <key>', 'retrying with the same key returns the first sandbox instead of a second one')
    .option('-q, --quiet', 'print only the id')
    .action(async (command: string[], o: CreateOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const req = createRequest(o, command);
      const client = ctx.client(g);
      const created = await ctx.progress('Creating sandbox', () =>
        client.sandboxes.create(req, o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}),
      );
      if (o.quiet) ctx.out(`${created.id}\n`);
      else printObject(ctx.io.stdout, g.output, created.info, sandboxFields(created.info));
    });

  sandbox
    .command('ls')
    .alias('list')
    .description('List sandboxes, newest first')
    .option('--status <status>', `only in this state (${SANDBOX_STATES.join(', ')})`)
    .option('-l, --label <key=value>', 'only with this label (repeatable: all must match)', collect)
    .option('--limit <n>', 'at most this many', '50')
    .option('-A, --all', 'every page, not only the first --limit')
    .action(async (o: { status?: string; label?: string[]; limit: string; all?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      if (o.status && !(SANDBOX_STATES as readonly string[]).includes(o.status))
        throw new UsageError(`--status must be one of ${SANDBOX_STATES.join(', ')}`);
      const limit = positiveInt('--limit', o.limit);
      const query = {
        ...(o.status ? { status: o.status as SandboxInfo['status'] } : {}),
        ...(o.label?.length ? { label: o.label } : {}),
      };
      const client = ctx.client(g);
      let items: SandboxInfo[];
      if (o.all) {
        items = [];
        for await (const s of client.sandboxes.all(query)) items.push(s);
      } else items = (await client.sandboxes.list({ ...query, limit: Math.min(limit, 500) })).items;
      printList(ctx.io.stdout, g.output, items, COLUMNS);
    });

  sandbox
    .command('get')
    .description('Show a sandbox: status, limits, policy, labels')
    .argument('<id>', 'sandbox id (sbx_...)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const s = await ctx.client(g).sandboxes.get(id);
      printObject(ctx.io.stdout, g.output, s.info, sandboxFields(s.info));
    });

  sandbox
    .command('rm')
    .alias('delete')
    .description('Delete sandboxes (containers and private networks removed)')
    .argument('<id...>', 'sandbox ids')
    .action(async (ids: string[], _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const done: { id: string; deleted: true }[] = [];
      for (const id of ids) {
        await ctx.progress(`Deleting ${id}`, () => client.sandboxes.ref(id).delete());
        done.push({ id, deleted: true });
        if (g.output === 'table') ctx.out(`sandbox ${id} deleted\n`);
      }
      if (g.output !== 'table') ctx.out(serialize(g.output, done));
    });

  sandbox
    .command('stop')
    .description('Stop sandboxes (SIGTERM, then SIGKILL after a grace period)')
    .argument('<id...>', 'sandbox ids')
    .action(async (ids: string[], _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const done: SandboxInfo[] = [];
      for (const id of ids) {
        const s = await ctx.progress(`Stopping ${id}`, () => client.sandboxes.ref(id).stop());
        done.push(s.info);
        if (g.output === 'table') ctx.out(`sandbox ${id} ${s.status}\n`);
      }
      if (g.output !== 'table') ctx.out(serialize(g.output, done));
    });

  sandbox
    .command('exec')
    .description('Run a command in a sandbox, streaming its output; exits with its exit status (124: timed out)')
    .argument('<id>', 'sandbox id')
    .argument('<command...>', 'command and arguments, after --')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect)
    .option('-w, --workdir <path>', 'working directory')
    .option('-t, --timeout <duration>', 'kill the command after this long (30s, 5m); default: the server default')
    .option('-i, --stdin', 'send standard input to the command')
    .addHelpText(
      'after',
      '\nExample: director sandbox exec sbx_... -- python3 -c "print(6*7)"\nWith -o json|yaml the result (exit code, output) is printed once the command ends.',
    )
    .action(async (id: string, command: string[], o: ExecOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const client = ctx.client(g);
      const env = keyValues('--env', o.env);
      const stdin = o.stdin ? await readAll(ctx.io.stdin) : undefined;
      const ac = new AbortController();
      const offInt = ctx.io.onSignal('SIGINT', () => ac.abort());
      const offTerm = ctx.io.onSignal('SIGTERM', () => ac.abort());
      const opts = {
        ...(env ? { environment: env } : {}),
        ...(o.workdir ? { workdir: o.workdir } : {}),
        ...(o.timeout ? { timeout: durationMs('--timeout', o.timeout) } : {}),
        ...(stdin !== undefined ? { stdin } : {}),
        signal: ac.signal,
      };
      try {
        const ref = client.sandboxes.ref(id);
        if (g.output !== 'table') {
          const r = await ref.run(command, opts);
          ctx.out(serialize(g.output, r));
          ctx.exitCode = exitStatusOf(r);
          return;
        }
        const run = ref.exec(command, opts);
        for await (const chunk of run) (chunk.stream === 'stdout' ? ctx.io.stdout : ctx.io.stderr).write(chunk.data);
        const r = await run.result;
        if (r.truncated) ctx.note('director: output was cut at the server limit (DIRECTOR_EXEC_OUTPUT_LIMIT_BYTES per stream)');
        if (r.timedOut) ctx.note(`director: the command timed out after ${duration(r.durationMs)} and was killed`);
        ctx.exitCode = exitStatusOf(r);
      } catch (err) {
        // Interrupted here: the request is gone and the server kills the command.
        if (ac.signal.aborted) {
          ctx.exitCode = 130;
          return;
        }
        throw err;
      } finally {
        offInt();
        offTerm();
      }
    });

  registerShell(sandbox, ctx);
  registerCp(sandbox, ctx);
}
