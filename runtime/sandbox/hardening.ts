import type { Config } from '../config.ts';
import type { ContainerSpec, TmpfsMount } from '../engine/engine.ts';
import type { EffectiveSpec } from './spec.ts';

/** Every sandbox process runs as this uid/gid (the images' `sandbox` user). Never root. */
export const SANDBOX_UID = 1000;
export const SANDBOX_USER = `${SANDBOX_UID}:${SANDBOX_UID}`;
/** Positive so the kernel's OOM killer picks a sandbox before the runtime. */
export const SANDBOX_OOM_SCORE_ADJ = 500;
export const MIB = 1024 * 1024;

/** Labels that tie every container to its record (see reconcile). */
export const LABEL = {
  managed: 'director.managed',
  runtime: 'director.runtime',
  sandbox: 'director.sandbox',
  workspace: 'director.workspace',
  pool: 'director.pool',
  userPrefix: 'director.label.',
} as const;

export const containerName = (sandboxId: string): string => `director-${sandboxId}`;

export interface HardeningContext {
  sandboxId: string;
  workspace: string;
  runtimeName: string;
  network: ContainerSpec['network'];
  /** The image's own working directory, used when the request names none. */
  imageWorkdir: string;
  poolKey?: string;
}

/**
 * The writable tmpfs mounts of a sandbox (none without `allowFilesystem`): `/tmp` and the
 * allowed paths, sharing the `disk` limit equally. The warm pool resizes a claimed sandbox's
 * mounts to these sizes (`tmpfs-size.ts`), so both paths use this one function.
 */
export function tmpfsMounts(spec: EffectiveSpec): TmpfsMount[] {
  const sp = spec.securityPolicy;
  if (!sp.allowFilesystem) return [];
  const paths = ['/tmp', ...sp.allowedPaths];
  const each = Math.max(1, Math.floor((spec.resourceLimits.disk * MIB) / paths.length));
  return paths.map((p) => ({
    path: p,
    sizeBytes: each,
    noexec: !sp.allowExec,
    uid: SANDBOX_UID,
    gid: SANDBOX_UID,
    mode: p === '/tmp' ? 0o1777 : 0o755,
  }));
}

/**
 * Builds the engine spec from an effective sandbox spec. This is the hardening floor: nothing
 * in `EffectiveSpec` can raise it, and `ContainerSpec` cannot even express privileged mode,
 * host namespaces, capabilities, binds or devices.
 */
export function buildContainerSpec(spec: EffectiveSpec, ctx: HardeningContext, cfg: Config): ContainerSpec {
  const sp = spec.securityPolicy;
  const rl = spec.resourceLimits;
  const tmpfs = tmpfsMounts(spec);
  const labels: Record<string, string> = {
    [LABEL.managed]: 'true',
    [LABEL.runtime]: ctx.runtimeName,
    [LABEL.sandbox]: ctx.sandboxId,
    [LABEL.workspace]: ctx.workspace,
  };
  if (ctx.poolKey) labels[LABEL.pool] = ctx.poolKey;
  for (const [k, v] of Object.entries(spec.labels)) labels[`${LABEL.userPrefix}${k}`] = v;
  return {
    name: containerName(ctx.sandboxId),
    image: spec.image,
    cmd: spec.command ?? ['sleep', 'infinity'],
    env: { ...spec.environment },
    user: SANDBOX_USER,
    workdir: spec.workdir ?? (ctx.imageWorkdir || '/'),
    labels,
    nanoCpus: Math.round(rl.cpu * 1e9),
    memoryBytes: rl.memory * MIB,
    pidsLimit: rl.pids,
    readOnlyRoot: sp.allowFilesystem ? sp.readOnlyRoot : true,
    tmpfs,
    maskedPaths: [...sp.blockedPaths],
    network: rl.network ? ctx.network : { mode: 'none' },
    ulimits: [
      { name: 'nofile', soft: spec.nofile ?? cfg.nofile, hard: spec.nofile ?? cfg.nofile },
      { name: 'core', soft: 0, hard: 0 },
      { name: 'fsize', soft: cfg.fsizeMb * MIB, hard: cfg.fsizeMb * MIB },
    ],
    logMaxBytes: cfg.logMaxBytes,
    oomScoreAdj: SANDBOX_OOM_SCORE_ADJ,
    hostname: 'sandbox',
  };
}
