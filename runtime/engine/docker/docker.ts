import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import {
  EngineConflictError,
  EngineNotFoundError,
  EngineUnavailableError,
  type ContainerSpec,
  type ContainerState,
  type ContainerStats,
  type ContainerStatus,
  type ContainerSummary,
  type Engine,
  type EngineEvent,
  type EngineInfo,
  type ExecHandle,
  type ExecOptions,
  type ImageInfo,
  type LiveLimits,
  type NetworkSpec,
  type NetworkState,
} from '../engine.ts';
import { parseCgroups, writeLimits, type HostCgroups } from './cgroups.ts';
import { resolveEndpoint, type Endpoint } from './connect.ts';
import { startExec } from './exec.ts';
import { RECORD_UPDATE_TURN_MS, SerialQueue } from './serial-queue.ts';
import { toCreateOptions } from './translate.ts';

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

interface DockerError {
  statusCode?: number;
  code?: string;
  message?: string;
  json?: { message?: string };
}

/** Maps dockerode failures onto the engine's error types; everything else passes through. */
export function mapError(err: unknown, what: string): Error {
  const e = err as DockerError;
  if (e?.code && UNAVAILABLE_CODES.has(e.code))
    return new EngineUnavailableError(`engine unreachable (${e.code}) during ${what}`, { cause: err });
  if (e?.statusCode === 404) return new EngineNotFoundError(`${what}: ${e.json?.message ?? 'not found'}`, { cause: err });
  if (e?.statusCode === 409) return new EngineConflictError(`${what}: ${e.json?.message ?? 'conflict'}`, { cause: err });
  if (err instanceof Error) return err;
  return new Error(`${what}: ${String(err)}`);
}

const labelFilters = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`);

/** The Docker implementation of {@link Engine}: the only module that imports dockerode. */
export class DockerEngine implements Engine {
  readonly kind = 'docker';
  readonly endpoint: string;
  readonly docker: Docker;
  private readonly ep: Endpoint;
  /** Container id → its pids cgroup's `pids.events` file, for {@link pidsLimitHits}. */
  private readonly pidsEventsFiles = new Map<string, string>();
  /** Container id → its cgroups on this host (local engine), for {@link updateLimits} and {@link hostPid}. */
  private readonly cgroups = new Map<string, HostCgroups>();
  /** Container id → the end of its chain of live limit changes ({@link updateLimits}); resolves, never rejects. */
  private readonly limitChanges = new Map<string, Promise<void>>();
  /** The engine-record updates that follow cgroup writes, one at a time across containers ({@link updateLimits}). */
  private readonly recordUpdates = new SerialQueue(RECORD_UPDATE_TURN_MS);

  get local(): boolean {
    return this.ep.local;
  }

  constructor(ep: Endpoint = resolveEndpoint()) {
    this.ep = ep;
    this.endpoint = ep.display;
    this.docker = new Docker({ ...ep.options, timeout: 120_000 });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapError(err, what);
    }
  }

  async ping(signal?: AbortSignal): Promise<EngineInfo> {
    return this.call('ping', async () => {
      const info = (await this.withSignal(this.docker.info(), signal)) as {
        ServerVersion: string;
        OSType: string;
        CgroupVersion?: string;
        Runtimes?: Record<string, unknown>;
      };
      const version = (await this.withSignal(this.docker.version(), signal)) as { ApiVersion: string };
      return {
        version: info.ServerVersion,
        apiVersion: version.ApiVersion,
        os: info.OSType,
        cgroupVersion: info.CgroupVersion ?? '1',
        runtimes: Object.keys(info.Runtimes ?? {}),
      };
    });
  }

  private withSignal<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
    if (!signal) return p;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(new EngineUnavailableError('engine did not answer in time'));
        signal.addEventListener('abort', () => reject(new EngineUnavailableError('engine did not answer in time')), { once: true });
      }),
    ]);
  }

  async imageInfo(ref: string): Promise<ImageInfo | null> {
    try {
      const img = await this.docker.getImage(ref).inspect();
      return {
        id: img.Id,
        labels: img.Config?.Labels ?? {},
        user: img.Config?.User ?? '',
        workdir: img.Config?.WorkingDir ?? '',
        entrypoint: Array.isArray(img.Config?.Entrypoint) ? img.Config.Entrypoint : [],
      };
    } catch (err) {
      const mapped = mapError(err, `inspect image ${ref}`);
      if (mapped instanceof EngineNotFoundError) return null;
      throw mapped;
    }
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    return this.call(`create container ${spec.name}`, async () => (await this.docker.createContainer(toCreateOptions(spec))).id);
  }

  async startContainer(id: string): Promise<void> {
    await this.call(`start ${id}`, async () => {
      try {
        await this.docker.getContainer(id).start();
      } catch (err) {
        if ((err as DockerError).statusCode === 304) return; // already started
        throw err;
      }
    });
  }

  async inspectContainer(id: string): Promise<ContainerState | null> {
    try {
      const c = await this.docker.getContainer(id).inspect();
      const nets = c.NetworkSettings?.Networks ?? {};
      return {
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        status: c.State.Status as ContainerStatus,
        running: c.State.Running,
        exitCode: c.State.Running ? null : c.State.ExitCode,
        oomKilled: c.State.OOMKilled,
        pid: c.State.Pid,
        startedAt: c.State.StartedAt && !c.State.StartedAt.startsWith('0001') ? c.State.StartedAt : null,
        finishedAt: c.State.FinishedAt && !c.State.FinishedAt.startsWith('0001') ? c.State.FinishedAt : null,
        labels: c.Config.Labels ?? {},
        ipAddresses: Object.fromEntries(Object.entries(nets).map(([name, n]) => [name, n.IPAddress])),
      };
    } catch (err) {
      const mapped = mapError(err, `inspect ${id}`);
      if (mapped instanceof EngineNotFoundError) return null;
      throw mapped;
    }
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    return this.call('list containers', async () => {
      const list = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
      return list.map((c) => ({
        id: c.Id,
        names: c.Names.map((n) => n.replace(/^\//, '')),
        status: c.State as ContainerStatus,
        labels: c.Labels ?? {},
        createdMs: c.Created * 1000,
      }));
    });
  }

  async stopContainer(id: string, graceS: number): Promise<void> {
    await this.ignoring([304, 404], `stop ${id}`, () => this.docker.getContainer(id).stop({ t: graceS }));
  }

  async killContainer(id: string, signal = 'SIGKILL'): Promise<void> {
    // 409: not running; 404: gone. Either way nothing is left to kill.
    await this.ignoring([404, 409], `kill ${id}`, () => this.docker.getContainer(id).kill({ signal }));
  }

  async removeContainer(id: string): Promise<void> {
    this.pidsEventsFiles.delete(id);
    this.cgroups.delete(id);
    this.limitChanges.delete(id);
    await this.ignoring([404], `remove ${id}`, async () => {
      try {
        await this.docker.getContainer(id).remove({ force: true, v: true });
      } catch (err) {
        // 409 "removal already in progress": wait for it to finish.
        if ((err as DockerError).statusCode !== 409) throw err;
        await this.docker
          .getContainer(id)
          .wait({ condition: 'removed' })
          .catch(() => undefined);
      }
    });
  }

  private async ignoring(codes: number[], what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (codes.includes((err as DockerError).statusCode ?? 0)) return;
      throw mapError(err, what);
    }
  }

  async stats(id: string): Promise<ContainerStats> {
    return this.call(`stats ${id}`, async () => {
      const s = (await this.docker.getContainer(id).stats({ stream: false })) as unknown as DockerStats;
      const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
      const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
      const cpus = s.cpu_stats?.online_cpus ?? s.cpu_stats?.cpu_usage?.percpu_usage?.length ?? 1;
      const cache = s.memory_stats?.stats?.total_inactive_file ?? s.memory_stats?.stats?.inactive_file ?? 0;
      let rx = 0;
      let tx = 0;
      for (const n of Object.values(s.networks ?? {})) {
        rx += n.rx_bytes;
        tx += n.tx_bytes;
      }
      return {
        cpuPercent: sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0,
        memoryBytes: Math.max(0, (s.memory_stats?.usage ?? 0) - cache),
        memoryLimitBytes: s.memory_stats?.limit ?? 0,
        pids: s.pids_stats?.current ?? 0,
        pidsLimit: s.pids_stats?.limit ?? 0,
        networkRxBytes: rx,
        networkTxBytes: tx,
        timestampMs: Date.parse(s.read) || Date.now(),
      };
    });
  }

  /**
   * With a local engine the limits are written into the container's cgroups at once (a
   * round trip through the engine costs 50-200 ms while it starts other containers) and the
   * engine's own record of them (`inspect`) is updated right after, in the background; a
   * failure of that second step leaves the kernel's limits in place and is not reported.
   * Elsewhere the engine's update does both.
   *
   * One container's changes run one after another: the engine's update writes every limit into
   * the cgroups as well, so a background update still running when a newer change is written
   * would put its older values back (in the kernel and in the engine's record) if it landed
   * last. A change that follows another closely waits for the other's engine update.
   *
   * The engine-record updates of all containers run one at a time ({@link recordUpdates}): each is
   * a `runc update` the engine forks, and twenty at once (a burst of claims from the pool) took
   * both cores from the first executes of the sandboxes just handed out, whose limits were
   * already in force.
   */
  async updateLimits(id: string, limits: LiveLimits): Promise<void> {
    const body: { PidsLimit?: number; NanoCpus?: number; Memory?: number; MemorySwap?: number } = {};
    if (limits.pidsLimit !== undefined) body.PidsLimit = limits.pidsLimit;
    if (limits.nanoCpus !== undefined) body.NanoCpus = limits.nanoCpus;
    if (limits.memoryBytes !== undefined) {
      body.Memory = limits.memoryBytes;
      body.MemorySwap = limits.memoryBytes;
    }
    const update = () => this.call(`update ${id}`, () => this.docker.getContainer(id).update(body));
    // Calls on one container take effect in the order they were made (see above).
    const change = async (): Promise<(() => Promise<unknown>) | null> => {
      const cg = this.ep.local ? await this.hostCgroups(id) : null;
      // No usable cgroup directory (none found, or only paths parseCgroups refuses): the engine's update alone.
      if (!cg || (!cg.v2 && Object.keys(cg.v1).length === 0)) {
        await update();
        return null;
      }
      await writeLimits(cg, limits);
      return update;
    };
    const written = (this.limitChanges.get(id) ?? Promise.resolve()).then(change);
    const ignore = () => undefined;
    const done = written.then((engineUpdate) => (engineUpdate ? this.recordUpdates.run(engineUpdate) : undefined), ignore);
    this.limitChanges.set(id, done);
    void done.then(() => {
      if (this.limitChanges.get(id) === done) this.limitChanges.delete(id);
    });
    await written;
  }

  /**
   * The host pid of the container's init (a local engine only; looked up once per container).
   * A pid is reused once its process is gone, and the pool's resizer joins this pid's mount
   * namespace as root: so the cached pid is answered only while that pid is still in the
   * container's cgroups (a reused pid belongs to another process, in other cgroups); otherwise
   * the cache is dropped and null answered (the caller asks the engine again).
   */
  async hostPid(id: string): Promise<number | null> {
    if (!this.ep.local) return null;
    const cg = await this.hostCgroups(id);
    if (!cg) return null;
    let now: HostCgroups | null = null;
    try {
      now = parseCgroups(cg.pid, readFileSync(`/proc/${cg.pid}/cgroup`, 'utf8'));
    } catch {
      now = null;
    }
    if (now && now.v2 === cg.v2 && JSON.stringify(now.v1) === JSON.stringify(cg.v1)) return cg.pid;
    this.cgroups.delete(id);
    return null;
  }

  /** Where the container's cgroups are on this host, from its init's /proc entry; cached for the container's life. */
  private async hostCgroups(id: string): Promise<HostCgroups | null> {
    const known = this.cgroups.get(id);
    if (known) return known;
    const state = await this.inspectContainer(id);
    if (!state?.running || !state.pid) return null;
    try {
      const cg = parseCgroups(state.pid, await readFile(`/proc/${state.pid}/cgroup`, 'utf8'));
      if (this.cgroups.size >= 10_000) this.cgroups.clear();
      this.cgroups.set(id, cg);
      return cg;
    } catch {
      return null;
    }
  }

  async pidsLimitHits(id: string): Promise<number | null> {
    if (!this.ep.local) return null;
    // The container's pids cgroup keeps its path for the container's whole life, so it is
    // looked up once: an inspect costs tens of ms while the engine is busy (a launcher being
    // re-armed), and this check runs after every execute, before its exit status is sent.
    const known = this.pidsEventsFiles.get(id);
    const file = known ?? (await this.pidsEventsFile(id));
    if (!file) return null;
    try {
      // Read synchronously: a cgroup file is generated in memory by the kernel (tens of µs),
      // while the promise version costs three thread-pool round trips (open, read, close),
      // 0.5–1.5 ms of every execute's exit status on a busy machine.
      const m = /^max (\d+)$/m.exec(readFileSync(file, 'utf8'));
      return m ? Number(m[1]) : null;
    } catch {
      this.pidsEventsFiles.delete(id);
      // The cgroup is gone (the container stopped, or was started again elsewhere): look it up again, once.
      return known ? this.pidsLimitHits(id) : null;
    }
  }

  private async pidsEventsFile(id: string): Promise<string | null> {
    const cg = await this.hostCgroups(id);
    const dir = cg?.v1.pids ?? cg?.v2;
    const file = dir ? `${dir}/pids.events` : null;
    if (file) {
      if (this.pidsEventsFiles.size >= 10_000) this.pidsEventsFiles.clear();
      this.pidsEventsFiles.set(id, file);
    }
    return file;
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecHandle> {
    return this.call(`exec in ${id}`, () => startExec(this.docker, this.ep.local, id, opts));
  }

  async putArchive(id: string, dir: string, tar: Readable): Promise<void> {
    await this.call(`put archive ${id}:${dir}`, () =>
      this.docker.getContainer(id).putArchive(tar, { path: dir, noOverwriteDirNonDir: true }),
    );
  }

  async getArchive(id: string, path: string): Promise<Readable> {
    return this.call(`get archive ${id}:${path}`, async () => (await this.docker.getContainer(id).getArchive({ path })) as Readable);
  }

  async createNetwork(spec: NetworkSpec): Promise<string> {
    return this.call(`create network ${spec.name}`, async () => {
      const net = await this.docker.createNetwork({
        Name: spec.name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: spec.internal,
        Attachable: false,
        EnableIPv6: false,
        IPAM: { Driver: 'default', Config: [{ Subnet: spec.subnet, Gateway: spec.gateway }] },
        Options: {
          'com.docker.network.bridge.name': spec.bridgeName,
          'com.docker.network.bridge.enable_ip_masquerade': String(spec.enableIpMasquerade),
          'com.docker.network.bridge.enable_icc': 'true',
        },
        Labels: spec.labels,
      });
      return net.id;
    });
  }

  async removeNetwork(idOrName: string): Promise<void> {
    await this.ignoring([404], `remove network ${idOrName}`, () => this.docker.getNetwork(idOrName).remove());
  }

  async inspectNetwork(idOrName: string): Promise<NetworkState | null> {
    try {
      return toNetworkState(await this.docker.getNetwork(idOrName).inspect());
    } catch (err) {
      const mapped = mapError(err, `inspect network ${idOrName}`);
      if (mapped instanceof EngineNotFoundError) return null;
      throw mapped;
    }
  }

  async listNetworks(labels: Record<string, string>): Promise<NetworkState[]> {
    return this.call('list networks', async () => {
      const list = (await this.docker.listNetworks({ filters: { label: labelFilters(labels) } })) as DockerNetwork[];
      return list.map(toNetworkState);
    });
  }

  async connectNetwork(networkId: string, containerId: string, ipv4?: string): Promise<void> {
    await this.call(`connect ${containerId} to ${networkId}`, () =>
      this.docker
        .getNetwork(networkId)
        .connect({ Container: containerId, EndpointConfig: ipv4 ? { IPAMConfig: { IPv4Address: ipv4 } } : {} }),
    );
  }

  async *events(labels: Record<string, string>, signal: AbortSignal): AsyncIterable<EngineEvent> {
    const stream = await this.call(
      'events',
      async () =>
        (await this.docker.getEvents({
          filters: { type: ['container'], label: labelFilters(labels) },
          abortSignal: signal,
        })) as unknown as Readable,
    );
    signal.addEventListener('abort', () => stream.destroy(), { once: true });
    let buf = '';
    try {
      for await (const chunk of stream) {
        buf += (chunk as Buffer).toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line) as {
            Action: string;
            id?: string;
            Actor?: { ID: string; Attributes?: Record<string, string> };
            timeNano?: number;
            time?: number;
          };
          const attrs = ev.Actor?.Attributes ?? {};
          const exit = attrs.exitCode === undefined ? undefined : Number(attrs.exitCode);
          yield {
            action: ev.Action.split(':')[0] ?? ev.Action,
            containerId: ev.Actor?.ID ?? ev.id ?? '',
            labels: attrs,
            timeMs: ev.timeNano ? Math.floor(ev.timeNano / 1e6) : (ev.time ?? 0) * 1000,
            ...(exit === undefined ? {} : { exitCode: exit }),
          };
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw mapError(err, 'events');
    }
  }
}

interface DockerStats {
  read: string;
  cpu_stats?: { cpu_usage?: { total_usage: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  pids_stats?: { current?: number; limit?: number };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}

interface DockerNetwork {
  Id: string;
  Name: string;
  Internal: boolean;
  Labels?: Record<string, string>;
  Options?: Record<string, string>;
  IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> };
  Containers?: Record<string, unknown>;
}

function toNetworkState(n: DockerNetwork): NetworkState {
  const cfg = n.IPAM?.Config?.[0];
  return {
    id: n.Id,
    name: n.Name,
    bridgeName: n.Options?.['com.docker.network.bridge.name'] ?? null,
    subnet: cfg?.Subnet ?? null,
    gateway: cfg?.Gateway ?? null,
    internal: n.Internal,
    labels: n.Labels ?? {},
    containers: Object.keys(n.Containers ?? {}),
  };
}
