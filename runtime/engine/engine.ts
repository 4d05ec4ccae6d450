import type { Readable, Writable } from 'node:stream';

/**
 * The narrow, engine-neutral interface the runtime talks to. Only the driver behind it
 * (today Docker via dockerode, `docker.ts`) knows the engine's API. The container spec has
 * no field for privileged mode, host namespaces, capabilities, raw binds, devices or another
 * OCI runtime: what cannot be expressed here can never reach the engine. The one mount it
 * can express is Director's own agent ({@link AgentMount}): read-only, at fixed paths.
 */
export interface Engine {
  readonly kind: string;
  /** Where the engine lives, for logs and `/health` ("unix:///var/run/docker.sock"). */
  readonly endpoint: string;
  /** The engine shares this host's kernel and filesystem (a local socket): host paths can be bound, host sockets reached. */
  readonly local?: boolean;
  ping(signal?: AbortSignal): Promise<EngineInfo>;

  imageInfo(ref: string): Promise<ImageInfo | null>;

  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  inspectContainer(id: string): Promise<ContainerState | null>;
  listContainers(labels: Record<string, string>): Promise<ContainerSummary[]>;
  /** Sends SIGTERM, then SIGKILL after `graceS` seconds. Stopping a stopped container is not an error. */
  stopContainer(id: string, graceS: number): Promise<void>;
  killContainer(id: string, signal?: string): Promise<void>;
  /** Removes the container (and its anonymous volumes). Missing containers are not an error. */
  removeContainer(id: string): Promise<void>;
  stats(id: string): Promise<ContainerStats>;

  exec(id: string, opts: ExecOptions): Promise<ExecHandle>;

  /** Extracts a tar stream into `dir` inside the container. */
  putArchive(id: string, dir: string, tar: Readable): Promise<void>;
  /** A tar stream of `path` inside the container (the engine's own format: one top entry). */
  getArchive(id: string, path: string): Promise<Readable>;

  createNetwork(spec: NetworkSpec): Promise<string>;
  removeNetwork(idOrName: string): Promise<void>;
  inspectNetwork(idOrName: string): Promise<NetworkState | null>;
  listNetworks(labels: Record<string, string>): Promise<NetworkState[]>;
  connectNetwork(networkId: string, containerId: string, ipv4?: string): Promise<void>;

  /**
   * How many times the container hit its pids limit (fork refused), where the engine can tell
   * (a local engine through the pids cgroup); null when not observable.
   */
  pidsLimitHits?(id: string): Promise<number | null>;

  /**
   * Changes a running container's limits in place (the ones the kernel can change live: pids,
   * CPU quota, memory). Absent fields stay as they are. Optional: drivers that cannot do it omit it.
   */
  updateLimits?(id: string, limits: LiveLimits): Promise<void>;

  /** The host pid of a running container's init, where the engine shares this host's /proc (local); null otherwise. */
  hostPid?(id: string): Promise<number | null>;

  /** Container lifecycle events (die, oom, start ...) for containers with the given labels. */
  events(labels: Record<string, string>, signal: AbortSignal): AsyncIterable<EngineEvent>;
}

/** Limits {@link Engine.updateLimits} can change on a running container. */
export interface LiveLimits {
  pidsLimit?: number;
  nanoCpus?: number;
  /** Memory limit in bytes; swap is set equal (no swap), as at create. */
  memoryBytes?: number;
}

export interface EngineInfo {
  version: string;
  apiVersion: string;
  os: string;
  cgroupVersion: string;
  /** OCI runtimes the engine offers (runc, runsc ...): optional stronger tiers. */
  runtimes: string[];
}

export interface ImageInfo {
  id: string;
  labels: Record<string, string>;
  user: string;
  workdir: string;
  /** The image's entrypoint (empty when none). */
  entrypoint?: string[];
}

export interface TmpfsMount {
  path: string;
  sizeBytes: number;
  noexec: boolean;
  readOnly?: boolean;
  /** Owner of the mount point (defaults to the sandbox user). */
  uid?: number;
  gid?: number;
  mode?: number;
}

export interface Ulimit {
  name: 'nofile' | 'core' | 'fsize' | 'nproc';
  soft: number;
  hard: number;
}

/**
 * Where Director's exec agent (docs/agent.md) appears inside a sandbox: its executable and the
 * directory holding the sandbox's channel socket, both mounted read-only. Fixed paths, so no
 * spec can place a mount anywhere else.
 */
export const AGENT_MOUNT = { binary: '/.director/agent', channelDir: '/.director/run' } as const;

/**
 * Host side of the agent's two read-only mounts. Both paths come from Director's own
 * configuration and the sandbox's id, never from a request.
 */
export interface AgentMount {
  /** The agent executable built by `images/agent/build.sh` (absolute). */
  binary: string;
  /** This sandbox's own channel directory (absolute), see `runtime/sandbox/agent/channel.ts`. */
  channelDir: string;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Entrypoint override; undefined keeps the image's. */
  entrypoint?: string[];
  cmd?: string[];
  env: Record<string, string>;
  user: string;
  workdir: string;
  labels: Record<string, string>;
  nanoCpus: number;
  memoryBytes: number;
  pidsLimit: number;
  readOnlyRoot: boolean;
  tmpfs: TmpfsMount[];
  /** Paths made unreadable (in addition to the engine's default masked paths, which stay). */
  maskedPaths: string[];
  /** `none` gives no interface but loopback; otherwise the id/name of a network to join. */
  network: { mode: 'none' } | { mode: 'network'; network: string; ipv4?: string; dns?: string[] };
  ulimits: Ulimit[];
  logMaxBytes: number;
  oomScoreAdj: number;
  hostname: string;
  /** Director's agent, mounted read-only at {@link AGENT_MOUNT}; absent: no mount at all. */
  agentMount?: AgentMount;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerState {
  id: string;
  name: string;
  status: ContainerStatus;
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  pid: number;
  startedAt: string | null;
  finishedAt: string | null;
  labels: Record<string, string>;
  ipAddresses: Record<string, string>;
}

export interface ContainerSummary {
  id: string;
  names: string[];
  status: ContainerStatus;
  labels: Record<string, string>;
  createdMs: number;
}

export interface ContainerStats {
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
  pidsLimit: number;
  networkRxBytes: number;
  networkTxBytes: number;
  timestampMs: number;
}

export interface ExecOptions {
  cmd: string[];
  env: Record<string, string>;
  workdir?: string;
  user: string;
  tty?: boolean;
  stdin?: boolean;
}

/** How an exec ended, as the path that ran it knows it. */
export interface ExecExit {
  /** The process's exit code (128 + the signal's number when a signal ended it); -1 when unknown. */
  exitCode: number;
  /**
   * The exec path itself killed the process because the timeout it was given passed (the exec
   * agent enforces its own); false on paths that keep no timeout (an engine exec: its caller does).
   */
  timedOut: boolean;
}

/**
 * A running exec, whichever path runs it (an engine exec, an armed launcher, the sandbox's exec
 * agent): callers treat them alike. Output arrives as chunks; `wait()` resolves once the process ended.
 */
export interface ExecHandle {
  readonly id: string;
  /** Demultiplexed output (with a TTY everything arrives as stdout). */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Present when `stdin` was requested. */
  readonly stdin: Writable | null;
  /**
   * Settles once the process started, or could not start (then `wait()` says how it ended):
   * an engine exec has started when its handle is given out, an agent's once the agent says so.
   */
  readonly started: Promise<unknown>;
  wait(): Promise<ExecExit>;
  /** Kills the exec's process group and everything that inherited its marker. */
  kill(): Promise<void>;
  resize?(cols: number, rows: number): Promise<void>;
}

export interface NetworkSpec {
  name: string;
  /** Linux bridge device name (deterministic, ties the bridge back to the record). */
  bridgeName: string;
  subnet: string;
  gateway: string;
  internal: boolean;
  /** Whether the engine may masquerade egress (false leaves routing to nftables policy). */
  enableIpMasquerade: boolean;
  labels: Record<string, string>;
}

export interface NetworkState {
  id: string;
  name: string;
  bridgeName: string | null;
  subnet: string | null;
  gateway: string | null;
  internal: boolean;
  labels: Record<string, string>;
  containers: string[];
}

export interface EngineEvent {
  action: string;
  containerId: string;
  labels: Record<string, string>;
  timeMs: number;
  exitCode?: number;
}

/** Thrown by drivers when the engine cannot be reached (maps to 503). */
export class EngineUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineUnavailableError';
  }
}

/** Thrown by drivers for a missing container/network/image (maps to 404). */
export class EngineNotFoundError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineNotFoundError';
  }
}

/** Thrown by drivers when the object's state refuses the call: a container not running, paused, being removed; a name in use (maps to 409). */
export class EngineConflictError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineConflictError';
  }
}
