import path from 'node:path';
import type Docker from 'dockerode';
import { AGENT_MOUNT, type AgentMount, type ContainerSpec, type TmpfsMount } from '../engine.ts';

/**
 * The paths Docker masks by default. Setting `MaskedPaths` replaces Docker's list, so the
 * defaults are repeated here and the sandbox's blocked paths are added to them.
 */
export const DOCKER_DEFAULT_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
] as const;

function tmpfsOptions(m: TmpfsMount): string {
  const opts = [m.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev', m.noexec ? 'noexec' : 'exec', `size=${m.sizeBytes}`];
  if (m.uid !== undefined) opts.push(`uid=${m.uid}`);
  if (m.gid !== undefined) opts.push(`gid=${m.gid}`);
  opts.push(`mode=${(m.mode ?? 0o755).toString(8)}`);
  return opts.join(',');
}

/** The agent's two read-only binds, at their fixed container paths (none without an agent). */
export function agentMounts(m: AgentMount | undefined): Docker.MountSettings[] {
  if (!m) return [];
  for (const p of [m.binary, m.channelDir])
    if (!path.posix.isAbsolute(p) || path.posix.normalize(p) !== p || p.endsWith('/'))
      throw new Error(`agent mount source ${p} is not a normalized absolute path`);
  const bind = (source: string, target: string): Docker.MountSettings => ({
    Type: 'bind',
    Source: source,
    Target: target,
    ReadOnly: true,
    BindOptions: { Propagation: 'rprivate' },
  });
  return [bind(m.binary, AGENT_MOUNT.binary), bind(m.channelDir, AGENT_MOUNT.channelDir)];
}

/**
 * Translates the engine-neutral spec into Docker's create body. The hardening that no spec
 * can change is written here as constants: every capability dropped, no-new-privileges,
 * an init as PID 1, private IPC/PID/cgroup namespaces, no restart, no privileged mode.
 */
export function toCreateOptions(spec: ContainerSpec): Docker.ContainerCreateOptions {
  const net = spec.network;
  const hostConfig: Docker.HostConfig & { MaskedPaths?: string[]; CgroupnsMode?: string } = {
    Privileged: false,
    CapDrop: ['ALL'],
    CapAdd: [],
    SecurityOpt: ['no-new-privileges:true'],
    Init: true,
    IpcMode: 'private',
    PidMode: '',
    UTSMode: '',
    UsernsMode: '',
    CgroupnsMode: 'private',
    Devices: [],
    Binds: [],
    Mounts: agentMounts(spec.agentMount),
    PublishAllPorts: false,
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    AutoRemove: false,
    NanoCpus: spec.nanoCpus,
    Memory: spec.memoryBytes,
    MemorySwap: spec.memoryBytes,
    MemorySwappiness: 0,
    PidsLimit: spec.pidsLimit,
    OomKillDisable: false,
    OomScoreAdj: spec.oomScoreAdj,
    ReadonlyRootfs: spec.readOnlyRoot,
    Tmpfs: Object.fromEntries(spec.tmpfs.map((m) => [m.path, tmpfsOptions(m)])),
    MaskedPaths: [...DOCKER_DEFAULT_MASKED_PATHS, ...spec.maskedPaths],
    Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
    LogConfig: { Type: 'json-file', Config: { 'max-size': String(spec.logMaxBytes), 'max-file': '1' } },
    NetworkMode: net.mode === 'none' ? 'none' : net.network,
    ...(net.mode === 'network' && net.dns ? { Dns: net.dns, DnsSearch: [], DnsOptions: [] } : {}),
  };
  return {
    name: spec.name,
    Image: spec.image,
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    ...(spec.cmd ? { Cmd: spec.cmd } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    User: spec.user,
    WorkingDir: spec.workdir,
    Hostname: spec.hostname,
    Labels: spec.labels,
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    NetworkDisabled: false,
    HostConfig: hostConfig,
    ...(net.mode === 'network'
      ? { NetworkingConfig: { EndpointsConfig: { [net.network]: net.ipv4 ? { IPAMConfig: { IPv4Address: net.ipv4 } } : {} } } }
      : {}),
  };
}
