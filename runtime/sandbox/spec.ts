import path from 'node:path/posix';
import { Type, type Static } from 'typebox';
import type { Config } from '../config.ts';
import { DirectorError, validationError } from '../../core/errors.ts';
import { checkSchema } from '../../core/validate.ts';
import { checkCeilings, type Ceiling } from '../../policies/profiles.ts';
import { applyLimitCeilings, type LimitCeiling } from '../../policies/limits.ts';

/**
 * The create-sandbox request (the Director Protocol's Sandbox fields, plus `pids`, `workdir`
 * and `labels`). Every object refuses unknown properties, so nothing a client sends reaches
 * the engine unchecked. Units: cpu in cores, memory/disk in MiB, maxDuration in ms.
 */
const Path = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: '^/[A-Za-z0-9._@+/-]*$',
  description: 'Absolute path inside the sandbox',
});
const EnvKey = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
const LabelKey = '^[a-z0-9][a-z0-9._/-]{0,62}$';

export const ResourceLimitsSchema = Type.Object(
  {
    cpu: Type.Optional(Type.Number({ minimum: 0.01, maximum: 64, description: 'CPU quota in cores' })),
    memory: Type.Optional(
      Type.Integer({ minimum: 6, maximum: 1_048_576, description: 'Memory limit in MiB (swap is set equal: no swap)' }),
    ),
    disk: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'Total MiB of the writable tmpfs mounts (/tmp and allowedPaths)' }),
    ),
    network: Type.Optional(Type.Boolean({ description: 'false removes networking (same as securityPolicy.allowNetwork=false)' })),
    maxDuration: Type.Optional(
      Type.Integer({ minimum: 1000, maximum: 2_592_000_000, description: 'Wall-time limit in ms; the sandbox is killed when it ends' }),
    ),
    pids: Type.Optional(Type.Integer({ minimum: 8, maximum: 65_536, description: 'Maximum number of processes' })),
  },
  { additionalProperties: false },
);

export const SecurityPolicySchema = Type.Object(
  {
    allowFilesystem: Type.Optional(Type.Boolean({ description: 'false: nothing in the sandbox is writable' })),
    allowNetwork: Type.Optional(Type.Boolean({ description: 'false (default): no network interface but loopback' })),
    allowExec: Type.Optional(Type.Boolean({ description: 'false: execute is refused' })),
    allowedPaths: Type.Optional(Type.Array(Path, { maxItems: 16, description: 'Writable tmpfs mounts (with a read-only root)' })),
    blockedPaths: Type.Optional(Type.Array(Path, { maxItems: 64, description: 'Paths masked so they cannot be read' })),
    readOnlyRoot: Type.Optional(Type.Boolean({ description: 'Default true; false leaves the image root writable' })),
    noPrivileges: Type.Optional(Type.Literal(true, { description: 'Always true: privileges cannot be granted' })),
  },
  { additionalProperties: false },
);

export const CreateSandboxSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' })),
    image: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, pattern: '^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$' }),
    ),
    command: Type.Optional(Type.Array(Type.String({ maxLength: 65_536 }), { minItems: 1, maxItems: 256 })),
    environment: Type.Optional(
      Type.Record(Type.String({ pattern: EnvKey }), Type.String({ maxLength: 32_768 }), {
        maxProperties: 128,
        additionalProperties: false,
      }),
    ),
    resourceLimits: Type.Optional(ResourceLimitsSchema),
    securityPolicy: Type.Optional(SecurityPolicySchema),
    networkMode: Type.Optional(
      Type.String({ pattern: '^(isolated|none|net_[A-Za-z0-9_-]{16})$', description: '`isolated`, `none` or a network id' }),
    ),
    workdir: Type.Optional(Path),
    labels: Type.Optional(
      Type.Record(Type.String({ pattern: LabelKey }), Type.String({ maxLength: 256 }), { maxProperties: 32, additionalProperties: false }),
    ),
    profileId: Type.Optional(
      Type.String({
        pattern: '^prf_[A-Za-z0-9_-]{16}$',
        description: 'A security profile (`/v1/security/profiles`): a ceiling the request can only narrow',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateSandboxRequest = Static<typeof CreateSandboxSchema>;

/** The request with every default and ceiling applied: what the sandbox actually gets. */
export interface EffectiveSpec {
  name: string;
  image: string;
  command: string[] | null;
  environment: Record<string, string>;
  workdir: string | null;
  labels: Record<string, string>;
  resourceLimits: { cpu: number; memory: number; disk: number; network: boolean; maxDuration: number; pids: number };
  securityPolicy: {
    allowFilesystem: boolean;
    allowNetwork: boolean;
    allowExec: boolean;
    allowedPaths: string[];
    blockedPaths: string[];
    readOnlyRoot: boolean;
    noPrivileges: true;
  };
  /** `none` whenever networking is not allowed, whatever was asked. */
  networkMode: string;
  /** The innermost security profile in force (named at create, else the workspace's); absent without one. */
  profileId?: string;
  /** RLIMIT_NOFILE set by a profile's maxOpenFiles; absent: the operator's DIRECTOR_NOFILE. */
  nofile?: number;
}

/**
 * Keys that ask for engine powers a sandbox never gets. They are refused by name (anywhere
 * in the body, any case) before schema validation so the error says exactly what was refused,
 * and the refusal is recorded as a `policy_violation`.
 */
const FORBIDDEN_KEYS = new Map<string, string>([
  ['privileged', 'privileged mode is never granted'],
  ['binds', 'host bind mounts are never granted'],
  ['mounts', 'host mounts are never granted'],
  ['volumes', 'host volumes are never granted'],
  ['volumesfrom', 'volumes from other containers are never granted'],
  ['capadd', 'extra capabilities are never granted'],
  ['cap_add', 'extra capabilities are never granted'],
  ['capabilities', 'extra capabilities are never granted'],
  ['devices', 'host devices are never granted'],
  ['devicerequests', 'host devices are never granted'],
  ['runtime', 'the OCI runtime is chosen by the operator, not the request'],
  ['securityopt', 'security options are fixed by Director'],
  ['pidmode', 'host namespaces are never granted'],
  ['ipcmode', 'host namespaces are never granted'],
  ['utsmode', 'host namespaces are never granted'],
  ['usernsmode', 'host namespaces are never granted'],
  ['cgroupnsmode', 'host namespaces are never granted'],
  ['cgroupparent', 'cgroup placement is fixed by Director'],
  ['hostconfig', 'engine host configuration is never accepted from a request'],
  ['user', 'sandboxes always run as the unprivileged sandbox user'],
  ['sysctls', 'kernel parameters are fixed by Director'],
  ['portbindings', 'host ports are never published'],
]);

const HOST_NAMESPACE_VALUE = /^(host|container:.*)$/i;
const FORBIDDEN_DIRS = ['/proc', '/sys', '/dev'];
const DOCKER_SOCKET = /docker\.sock|containerd\.sock|\/run\/docker/;

export class PolicyViolationError extends DirectorError {
  /** `extra.deniedBy` names the level that refused (`operator`, `workspace`, `profile`). */
  constructor(field: string, issue: string, extra?: Record<string, unknown>) {
    super('VALIDATION_ERROR', `Refused ${field}: ${issue}`, { field, issue, policyViolation: true, ...extra });
  }
}

/**
 * How deep {@link findForbidden} looks. A valid body nests three levels; anything deeper is
 * refused by the schema anyway, and a hostile body thousands of levels deep must not exhaust
 * the stack here (a RangeError would surface as a 500).
 */
const MAX_SCAN_DEPTH = 32;

/** The first key (or host-namespace value) asking for a forbidden power, as an error naming it. */
export function findForbidden(value: unknown, at: string, depth = 0): PolicyViolationError | null {
  if (depth > MAX_SCAN_DEPTH) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findForbidden(value[i], `${at}[${i}]`, depth + 1);
      if (hit) return hit;
    }
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  for (const [key, v] of Object.entries(value)) {
    const field = at ? `${at}.${key}` : key;
    const lower = key.toLowerCase();
    // `environment` and `labels` hold user data whose keys may legitimately be called anything.
    if (at === '' && (lower === 'environment' || lower === 'labels')) continue;
    const reason = FORBIDDEN_KEYS.get(lower);
    if (reason) return new PolicyViolationError(field, reason);
    if (lower === 'networkmode' && typeof v === 'string' && HOST_NAMESPACE_VALUE.test(v))
      return new PolicyViolationError(field, 'host and container network namespaces are never granted');
    if (lower === 'noprivileges' && v === false)
      return new PolicyViolationError(field, 'privileges cannot be granted: noPrivileges is always true');
    const hit = findForbidden(v, field, depth + 1);
    if (hit) return hit;
  }
  return null;
}

function checkPath(field: string, p: string, opts: { allowSystemDirs?: boolean } = {}): string {
  // One trailing slash is tolerated and dropped, so `/app/` and `/app` are the same path.
  const trimmed = p.length > 1 ? p.replace(/\/$/, '') : p;
  const norm = path.normalize(trimmed);
  if (norm !== trimmed) throw validationError(field, 'must be a normalized absolute path (no `.`, `..` or `//`)', { value: p });
  if (norm === '/') throw validationError(field, 'the root directory cannot be used here', { value: p });
  if (DOCKER_SOCKET.test(norm)) throw new PolicyViolationError(field, 'engine sockets are never reachable from a sandbox');
  if (!opts.allowSystemDirs && (norm === '/' || FORBIDDEN_DIRS.some((d) => norm === d || norm.startsWith(`${d}/`)))) {
    throw new PolicyViolationError(field, `${norm} is a kernel or device filesystem and cannot be used here`);
  }
  return norm;
}

/**
 * Validates a raw create request and applies defaults, operator ceilings and then the security
 * profile `ceilings` (outermost first: workspace, profile), then the orchestration levels'
 * resource `limitCeilings` (outermost first: session, department, environment). Throws a {@link PolicyViolationError}
 * for requests asking for forbidden powers or more than a ceiling allows (`details.deniedBy`
 * names the level) and a VALIDATION_ERROR naming the field for anything else; nothing is
 * created before this returns.
 */
export function resolveSpec(
  raw: unknown,
  cfg: Config,
  ceilings: readonly Ceiling[] = [],
  limitCeilings: readonly LimitCeiling[] = [],
): EffectiveSpec {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw validationError('body', 'must be a JSON object');
  const forbidden = findForbidden(raw, '');
  if (forbidden) throw forbidden;
  checkSchema(CreateSandboxSchema, raw);
  const req = raw;
  const rl = req.resourceLimits ?? {};
  const sp = req.securityPolicy ?? {};
  const ceiling = (field: string, value: number | undefined, def: number, max: number): number => {
    if (value === undefined) return def;
    if (value > max)
      throw new PolicyViolationError(field, `${value} exceeds the operator's limit of ${max}`, {
        deniedBy: { level: 'operator', id: null },
      });
    return value;
  };
  const allowFilesystem = sp.allowFilesystem ?? true;
  const allowNetwork = (sp.allowNetwork ?? false) && (rl.network ?? true);
  const allowedPaths = (sp.allowedPaths ?? (allowFilesystem ? ['/workspace'] : [])).map((p, i) =>
    checkPath(`securityPolicy.allowedPaths[${i}]`, p),
  );
  const blockedPaths = (sp.blockedPaths ?? []).map((p, i) => checkPath(`securityPolicy.blockedPaths[${i}]`, p, { allowSystemDirs: true }));
  if (!allowFilesystem && sp.allowedPaths?.length)
    throw validationError('securityPolicy.allowedPaths', 'contradicts allowFilesystem=false');
  if (!allowFilesystem && sp.readOnlyRoot === false)
    throw validationError('securityPolicy.readOnlyRoot', 'contradicts allowFilesystem=false');
  for (const [i, a] of allowedPaths.entries()) {
    if (blockedPaths.some((b) => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`))) {
      throw validationError(`securityPolicy.allowedPaths[${i}]`, 'overlaps a blocked path');
    }
  }
  if (new Set(allowedPaths).size !== allowedPaths.length || allowedPaths.includes('/tmp')) {
    throw validationError('securityPolicy.allowedPaths', 'paths must be unique (/tmp is always provided)');
  }
  const workdir = req.workdir === undefined ? null : checkPath('workdir', req.workdir);
  // Networking needs both allowNetwork and resourceLimits.network; otherwise `none`, whatever
  // networkMode asked (the Director Protocol's own example combines allowNetwork=false with `isolated`).
  const resourceLimits = {
    cpu: ceiling('resourceLimits.cpu', rl.cpu, cfg.defaultCpu, cfg.maxCpu),
    memory: ceiling('resourceLimits.memory', rl.memory, cfg.defaultMemoryMb, cfg.maxMemoryMb),
    disk: ceiling('resourceLimits.disk', rl.disk, cfg.defaultDiskMb, cfg.maxDiskMb),
    network: allowNetwork,
    maxDuration: ceiling('resourceLimits.maxDuration', rl.maxDuration, cfg.defaultMaxDurationMs, cfg.maxDurationMs),
    pids: ceiling('resourceLimits.pids', rl.pids, cfg.defaultPids, cfg.maxPids),
  };
  // Profile ceilings after the operator's: a request over both is refused by the operator (the outermost level).
  if (req.profileId !== undefined && !ceilings.some((c) => c.id === req.profileId))
    throw validationError('profileId', 'no such security profile in this workspace');
  const checked = checkCeilings(req, ceilings);
  if (!checked.ok) throw new PolicyViolationError(checked.denial.field, checked.denial.issue, { deniedBy: checked.denial.deniedBy });
  const n = checked.narrowing;
  const fs = allowFilesystem && n.allowFilesystem;
  const net = allowNetwork && n.allowNetwork;
  resourceLimits.network = net;
  if (n.maxProcesses !== null && rl.pids === undefined) resourceLimits.pids = Math.min(n.maxProcesses, cfg.maxPids);
  if (limitCeilings.length) {
    const limited = applyLimitCeilings(rl, resourceLimits, limitCeilings);
    if (!limited.ok) throw new PolicyViolationError(limited.denial.field, limited.denial.issue, { deniedBy: limited.denial.deniedBy });
    Object.assign(resourceLimits, limited.limits);
  }
  return {
    name: req.name ?? 'sandbox',
    image: req.image ?? cfg.defaultImage,
    command: req.command ?? null,
    environment: req.environment ?? {},
    workdir,
    labels: req.labels ?? {},
    resourceLimits,
    securityPolicy: {
      allowFilesystem: fs,
      allowNetwork: net,
      allowExec: (sp.allowExec ?? true) && n.allowExec,
      allowedPaths: fs ? allowedPaths : [],
      blockedPaths,
      readOnlyRoot: fs ? (sp.readOnlyRoot ?? true) : true,
      noPrivileges: true,
    },
    networkMode: net ? (req.networkMode ?? 'isolated') : 'none',
    ...(n.profileId === null ? {} : { profileId: n.profileId }),
    ...(n.maxOpenFiles === null ? {} : { nofile: Math.min(n.maxOpenFiles, cfg.nofile) }),
  };
}
