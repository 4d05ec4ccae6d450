import { constants as osConstants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { Type, type Static } from 'typebox';
import { AGENT_MOUNT, type ExecHandle } from '../engine/engine.ts';
import { DirectorError, conflict, validationError } from '../../core/errors.ts';
import { SANDBOX_USER } from './hardening.ts';
import type { Launchers } from './launcher.ts';
import type { SandboxEnvironments } from './environment.ts';
import type { SandboxRecord } from '../store/sandboxes.ts';
import { engineCall } from './engine-call.ts';
import type { Caller, SandboxManager } from './manager.ts';
import { PolicyViolationError } from './spec.ts';
import { checkSchema, compileSchema } from '../../core/validate.ts';
import type { Agents } from './agent/agents.ts';
import type { OpenOptions } from './mount-sync.ts';
import { AgentLostError, type AgentClient } from './agent/client.ts';
import type { AgentExec, AgentExecOptions } from './agent/exec.ts';
import { AgentRequestError } from './agent/protocol.ts';

/** How long Executor.open waits for an agent's first answer to flag 8 without a caller's timeout. */
const TREE_FLAG_WAIT_MS = 10_000;

/** `p`'s value, or undefined once `ms` passed first. */
function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export const ExecuteSchema = Type.Object(
  {
    command: Type.Union([
      Type.Array(Type.String({ maxLength: 131_072 }), { minItems: 1, maxItems: 4096, description: 'argv, run without a shell' }),
      Type.String({ minLength: 1, maxLength: 131_072, description: 'a shell command line, run with /bin/sh -c' }),
    ]),
    timeout: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'ms; the whole process group is killed when it ends' }),
    ),
    environment: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 32_768 }), {
        maxProperties: 128,
        additionalProperties: false,
      }),
    ),
    workdir: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^/[A-Za-z0-9._@+/-]*$' })),
    stdin: Type.Optional(Type.String({ maxLength: 1_048_576, description: 'UTF-8 text written to the process, then closed' })),
  },
  { additionalProperties: false },
);
export type ExecuteRequest = Static<typeof ExecuteSchema>;
const ExecuteCheck = compileSchema(ExecuteSchema);

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  truncated: boolean;
}

export type ExecChunk =
  | { type: 'stdout' | 'stderr'; data: string }
  | { type: 'exit'; exitCode: number; durationMs: number; timedOut: boolean; truncated: boolean };

/** A small unbounded async queue connecting stream callbacks to an async generator. */
class Queue<T> {
  private items: T[] = [];
  private waiter: (() => void) | null = null;
  private closed = false;
  push(v: T): void {
    this.items.push(v);
    this.waiter?.();
  }
  close(): void {
    this.closed = true;
    this.waiter?.();
  }
  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.items.length) yield this.items.shift()!;
      if (this.closed) return;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = null;
    }
  }
}

/** Follows one execute that passed its checks (see {@link Executor.stream}); null: not followed. */
export type TaskObserver = (rec: SandboxRecord) => ((failed: boolean) => void) | null;

/**
 * An execute's chunks as `task` follows them: it is told of the sandbox before the first chunk,
 * and what it returned is called once when the chunks end, are abandoned or fail: failed unless
 * an exit 0 within its timeout was seen.
 */
export async function* followed(
  rec: SandboxRecord,
  task: TaskObserver | undefined,
  chunks: AsyncGenerator<ExecChunk>,
): AsyncGenerator<ExecChunk> {
  const end = task?.(rec);
  if (!end) {
    yield* chunks;
    return;
  }
  let failed = true;
  try {
    for await (const c of chunks) {
      if (c.type === 'exit') failed = c.exitCode !== 0 || c.timedOut;
      yield c;
    }
  } finally {
    end(failed);
  }
}

/** Executes commands in running sandboxes: plain JSON results or a stream of chunks. */
export class Executor {
  private readonly manager: SandboxManager;
  private readonly launchers: Launchers;
  private readonly environments: Pick<SandboxEnvironments, 'of' | 'forget'> | null;
  private readonly agents: Agents | null;
  private readonly lastPidsHits = new Map<string, number>();
  /** Whether each agent took the agent's-own-tree flag (8) when first asked; absent: not asked yet. */
  private readonly treeFlag = new WeakMap<AgentClient, boolean>();

  constructor(
    manager: SandboxManager,
    launchers: Launchers,
    environments: Pick<SandboxEnvironments, 'of' | 'forget'> | null = null,
    agents: Agents | null = null,
  ) {
    this.manager = manager;
    this.launchers = launchers;
    this.environments = environments;
    this.agents = agents;
  }

  /**
   * The sandbox's own environment that its container does not carry (one fitted from the warm
   * pool), for every process run in it: execute, shells, workflow steps, agent tools. A call's
   * own `environment` overrides it, as `docker exec -e` overrides a container's.
   */
  environmentOf(sandboxId: string): Record<string, string> {
    return this.environments?.of(sandboxId) ?? {};
  }

  /**
   * The one dispatch point between the sandbox's exec agent and `docker exec`: the agent's
   * exec when the sandbox has a live agent, else null (the caller takes the launcher or a
   * plain exec). An agent that is gone or refuses the request has run nothing; its loss is
   * reported (`agent_lost`) by {@link Agents}.
   */
  private viaAgent(agent: AgentClient | null, opts: AgentExecOptions): AgentExec | null {
    if (!agent) return null;
    try {
      return agent.exec(opts);
    } catch (err) {
      if (err instanceof AgentLostError || err instanceof AgentRequestError) return null;
      throw err;
    }
  }

  /**
   * A sandbox runs (the lifecycle's `started`): pre-start its exec launcher, so even the first
   * execute is fast, and have the engine find the container's pids cgroup now, off the execute
   * path (the check after each execute is then one file read). Nothing is recorded here: a
   * lookup that finishes after the sandbox ended must not leave an entry behind.
   */
  started(r: SandboxRecord): void {
    if (!r.containerId || !r.spec.securityPolicy.allowExec) return;
    // A sandbox with a live agent needs no launcher (nor its idle shell); one is armed if the agent is lost.
    if (!this.agents?.client(r.id)) this.launchers.arm(r.containerId);
    void this.manager.deps.engine.pidsLimitHits?.(r.containerId).catch(() => undefined);
  }

  /** Sandboxes whose pids-limit count is kept (running ones that have executed); for tests. */
  get tracked(): number {
    return this.lastPidsHits.size;
  }

  async run(caller: Caller, id: string, raw: unknown, signal?: AbortSignal, task?: TaskObserver): Promise<ExecResult> {
    const out: Record<'stdout' | 'stderr', string[]> = { stdout: [], stderr: [] };
    for await (const c of this.stream(caller, id, raw, signal, task)) {
      if (c.type === 'exit')
        return {
          exitCode: c.exitCode,
          stdout: out.stdout.join(''),
          stderr: out.stderr.join(''),
          durationMs: c.durationMs,
          timedOut: c.timedOut,
          truncated: c.truncated,
        };
      out[c.type].push(c.data);
    }
    throw new DirectorError('INTERNAL_ERROR', 'execute ended without an exit status');
  }

  /** Validates and authorizes; throws before anything runs. Returns what to run. */
  prepare(caller: Caller, id: string, raw: unknown) {
    const { deps } = this.manager;
    const rec = this.manager.get(caller, id);
    if (!rec.spec.securityPolicy.allowExec) {
      deps.metrics.execTotal.inc({ result: 'denied' });
      deps.events.emit({
        type: 'exec_denied',
        severity: 'medium',
        workspace: rec.workspace,
        sandboxId: rec.id,
        actor: caller.actor ?? null,
        details: { reason: 'allowExec is false in the sandbox security policy' },
      });
      throw new DirectorError('AUTHORIZATION_ERROR', "execution is disabled by this sandbox's security policy (allowExec=false)", {
        field: 'securityPolicy.allowExec',
      });
    }
    if (rec.status !== 'running' || !rec.containerId)
      throw conflict(`sandbox ${id} is ${rec.status}; execute needs a running sandbox`, { status: rec.status });
    if (raw === null || typeof raw !== 'object') throw validationError('body', 'must be a JSON object');
    checkSchema(ExecuteCheck, raw);
    const req = raw;
    const timeoutMs = req.timeout ?? deps.config.execTimeoutMs;
    if (timeoutMs > deps.config.maxExecTimeoutMs) throw validationError('timeout', `must be at most ${deps.config.maxExecTimeoutMs} ms`);
    if (req.workdir && /^\/(proc|sys|dev)(\/|$)/.test(req.workdir))
      throw new PolicyViolationError('workdir', 'kernel and device filesystems cannot be a working directory');
    const cmd = typeof req.command === 'string' ? ['/bin/sh', '-c', req.command] : req.command;
    // The sandbox's own `workdir` is the default of every process, as the container's working
    // directory is for a cold sandbox: a sandbox fitted from the warm pool was started in the pool's.
    const workdir = req.workdir ?? rec.spec.workdir ?? undefined;
    return { rec, req, cmd, timeoutMs, containerId: rec.containerId, workdir };
  }

  /**
   * Runs the command, its output as it comes, then its exit. `task`, given the sandbox once the
   * request passed {@link prepare} (nothing ran before), may start counting the execute; what it
   * returns is called once when it ends: failed unless it exited 0 within its timeout.
   */
  async *stream(caller: Caller, id: string, raw: unknown, signal?: AbortSignal, task?: TaskObserver): AsyncGenerator<ExecChunk> {
    const prepared = this.prepare(caller, id, raw);
    yield* followed(prepared.rec, task, this.#stream(caller, prepared, signal));
  }

  async *#stream(caller: Caller, prepared: ReturnType<Executor['prepare']>, signal?: AbortSignal): AsyncGenerator<ExecChunk> {
    const { deps } = this.manager;
    const { rec, req, cmd, timeoutMs, containerId, workdir } = prepared;
    const limit = deps.config.execOutputLimitBytes;
    const started = performance.now();
    const env = { ...this.environmentOf(rec.id), ...req.environment };
    let handle: ExecHandle | null = this.viaAgent(this.agents?.client(rec.id) ?? null, {
      argv: cmd,
      env,
      ...(workdir ? { workdir } : {}),
      timeoutMs,
      stdin: req.stdin !== undefined,
    });
    if (handle) {
      if (req.stdin !== undefined) handle.stdin?.end(req.stdin);
    } else handle = await this.launchers.take(containerId, cmd, env, workdir, req.stdin);
    if (!handle) {
      handle = await engineCall(() =>
        deps.engine.exec(containerId, {
          cmd,
          env,
          user: SANDBOX_USER,
          ...(workdir ? { workdir } : {}),
          stdin: req.stdin !== undefined,
        }),
      ).catch(async (err: unknown) => {
        throw (await this.stoppedUnder(rec.id, containerId, 1)) ?? err;
      });
      if (req.stdin !== undefined && handle.stdin) handle.stdin.end(req.stdin);
      this.launchers.rearmAfter(containerId, handle);
    }
    const h = handle;
    const queue = new Queue<ExecChunk>();
    let truncated = false;
    let timedOut = false;
    const seen = { stdout: 0, stderr: 0 };
    for (const name of ['stdout', 'stderr'] as const) {
      const decoder = new StringDecoder('utf8');
      h[name].on('data', (buf: Buffer) => {
        const room = limit - seen[name];
        seen[name] += buf.length;
        if (room <= 0) {
          truncated = true;
          return;
        }
        if (buf.length > room) truncated = true;
        const text = decoder.write(buf.length > room ? buf.subarray(0, room) : buf);
        if (text) queue.push({ type: name, data: text });
      });
    }
    const kill = () => void h.kill().catch(() => undefined);
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const onAbort = () => kill();
    signal?.addEventListener('abort', onAbort, { once: true });
    const finished = h.wait().then(
      (r) => r,
      () => ({ exitCode: -1, timedOut: false }),
    );
    let done = false;
    void finished.finally(() => {
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      queue.close();
    });
    try {
      yield* queue.drain();
    } finally {
      // A consumer that stops early (client went away) must not leave the process running.
      if (!done) kill();
    }
    const exit = await finished;
    // An exit nobody could read (the exec's connection or agent went away) from a container that
    // stopped under a record still `running` (killed outside Director, OOM of its init): the
    // sandbox was not running, which is the 409 a stopped sandbox gets, not a -1 exit.
    if (exit.exitCode === -1 && !exit.timedOut && !timedOut && !signal?.aborted) {
      const stopped = await this.stoppedUnder(rec.id, containerId, 4);
      if (stopped) throw stopped;
    }
    const { exitCode } = exit;
    // A path that enforces the timeout itself (the agent) says so; the timer above is the backstop.
    if (exit.timedOut) timedOut = true;
    const durationMs = Math.round(performance.now() - started);
    deps.metrics.execSeconds.observe(durationMs / 1000);
    deps.metrics.execTotal.inc({ result: timedOut ? 'timeout' : exitCode === 0 ? 'ok' : 'nonzero' });
    if (timedOut) {
      deps.events.emit({
        type: 'timeout_killed',
        severity: 'low',
        workspace: rec.workspace,
        sandboxId: rec.id,
        actor: caller.actor ?? null,
        details: { scope: 'exec', timeoutMs, command: cmd.slice(0, 8).map((a) => a.slice(0, 128)) },
      });
    }
    await this.checkPidsLimit(rec.id, rec.workspace, containerId);
    yield { type: 'exit', exitCode, durationMs, timedOut, truncated };
  }

  /**
   * The 409 of an execute in a sandbox whose container is not running (or is gone), or null while
   * it runs. The engine may report the container running for a moment after its processes died:
   * it is asked up to `tries` times, 100 ms apart. An engine that cannot answer says nothing (null).
   */
  private async stoppedUnder(sandboxId: string, containerId: string, tries: number): Promise<DirectorError | null> {
    for (let i = 0; i < tries; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      const state = await this.manager.deps.engine.inspectContainer(containerId).catch(() => undefined);
      if (state === undefined) return null;
      if (!state?.running)
        return conflict(`sandbox ${sandboxId} is not running (container ${state?.status ?? 'gone'}); execute needs a running sandbox`, {
          status: 'not_running',
          container: state?.status ?? 'gone',
        });
    }
    return null;
  }

  /** Emits `pids_limit_reached` when the sandbox's pids cgroup refused a fork since last checked. */
  async checkPidsLimit(sandboxId: string, workspace: string, containerId: string): Promise<void> {
    const { engine, events } = this.manager.deps;
    const hits = await engine.pidsLimitHits?.(containerId).catch(() => null);
    if (hits === null || hits === undefined) return;
    const before = this.lastPidsHits.get(sandboxId) ?? 0;
    this.lastPidsHits.set(sandboxId, hits);
    if (hits > before)
      events.emit({
        type: 'pids_limit_reached',
        severity: 'medium',
        workspace,
        sandboxId,
        details: { refusedForks: hits - before, total: hits },
      });
  }

  /**
   * Starts `cmd` in a running container as the sandbox user, with stdin left open for the caller
   * (the runtime's own tools, such as checkpoints' mount reader: no execute policy applies).
   * Through the sandbox's live agent; else on the container's armed launcher when it has one,
   * which saves the engine's exec start; else a plain exec. `agentTree` (the agent binary's own
   * `tree`): through the agent, run by a fork of it without execve (flag 8).
   */
  async open(containerId: string, cmd: string[], opts: OpenOptions = {}): Promise<ExecHandle> {
    const agent = this.agents?.clientOfContainer(containerId) ?? null;
    const frame = {
      argv: cmd,
      stdin: true,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.finishOnDisconnect ? { finishOnDisconnect: true } : {}),
      ...(opts.outputWindowBytes ? { outputWindowBytes: opts.outputWindowBytes } : {}),
    };
    if (opts.agentTree && agent && this.treeFlag.get(agent) !== false) {
      const h = this.viaAgent(agent, { ...frame, tree: true });
      if (h) {
        if (this.treeFlag.has(agent)) return h;
        // Asked once per agent: one built before flag 8 refuses it as a malformed exec (could not
        // start, EINVAL), and is then asked without it. Waited for no longer than the caller's
        // timeout (a stopped agent: the caller's own deadline then decides).
        const pid = await settledWithin(h.started, opts.timeoutMs ?? TREE_FLAG_WAIT_MS);
        if (pid === undefined) return h;
        const refused = pid === null && (await h.exit).errno === osConstants.errno.EINVAL;
        if (pid !== null || refused) this.treeFlag.set(agent, !refused);
        if (!refused) return h;
      }
    }
    const viaAgent = this.viaAgent(agent, frame);
    if (viaAgent) return viaAgent;
    const armed = await this.launchers.take(containerId, cmd, {}, undefined, undefined, { keepStdin: true });
    if (armed) return armed;
    return engineCall(() => this.manager.deps.engine.exec(containerId, { cmd, env: {}, user: SANDBOX_USER, stdin: true }));
  }

  /**
   * The path of Director's agent binary inside the container when its agent is live (the binary
   * is mounted read-only in every sandbox created with an agent): the runtime's own tools run it
   * (`tree`, the checkpoint reader); null when the container has none or its agent is gone.
   */
  agentBinaryIn(containerId: string): string | null {
    return this.agents?.clientOfContainer(containerId) ? AGENT_MOUNT.binary : null;
  }

  /**
   * An interactive process on a terminal (the shell behind the WebSocket terminal) through the
   * sandbox's live agent; null without one (the caller starts a `docker exec` with a tty).
   */
  async terminal(sandboxId: string, cmd: string[], env: Record<string, string>, workdir?: string): Promise<ExecHandle | null> {
    const h = this.viaAgent(this.agents?.client(sandboxId) ?? null, {
      argv: cmd,
      env,
      ...(workdir ? { workdir } : {}),
      stdin: true,
      tty: { cols: 80, rows: 24 },
    });
    // Resolved once the process started (or could not), as an engine exec resolves once it was started.
    await h?.started;
    return h;
  }

  /** A sandbox ended (the lifecycle's `ended`): its pids count, cached environment and launcher go. */
  forget(sandboxId: string, containerId: string | null): void {
    this.lastPidsHits.delete(sandboxId);
    this.environments?.forget(sandboxId);
    if (containerId) this.launchers.forget(containerId);
  }
}
