import { Type, type Static, type TSchema } from 'typebox';
import path from 'node:path';
import { checkCidr } from '../policies/address.ts';
import { firstIssue, normalizeOrigin, parseList } from '../core/validate.ts';

/**
 * Every `DIRECTOR_*` setting of the server, declared once: variable, type, default, unit and
 * meaning. `loadConfig` validates the environment against it before anything starts and refuses
 * to start on a bad value, naming the variable; no other code reads a `DIRECTOR_*` variable
 * (a unit test checks). The README's configuration table is generated from this list
 * (`node scripts/config-doc.ts --write`; a unit test fails when it drifts).
 */
interface Setting {
  env: string;
  schema: TSchema;
  default: unknown;
  unit?: string;
  description: string;
  /** What the schema cannot say (an origin, a CIDR); throws an Error whose message names `name`. */
  check?: (value: never, name: string) => void;
}

const int = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });
const num = (min: number, max: number) => Type.Number({ minimum: min, maximum: max });
const str = () => Type.String({ minLength: 1 });

/** Each comma-separated entry must be a CIDR (`10.0.0.0/8`, `fd00::/8`). */
const cidrList = (value: string, name: string): void => {
  for (const entry of parseList(value)) {
    const r = checkCidr(entry);
    if (!('cidr' in r)) throw new Error(`${name}: ${r.issue}`);
  }
};

export const SETTINGS = {
  host: { env: 'DIRECTOR_HOST', schema: str(), default: '127.0.0.1', description: 'Address the API listens on.' },
  port: { env: 'DIRECTOR_PORT', schema: int(0, 65535), default: 8080, description: 'TCP port the API listens on.' },
  dataDir: {
    env: 'DIRECTOR_DATA_DIR',
    schema: str(),
    default: '.state/data',
    description: 'Directory for the embedded SQLite store and other state (relative paths are from the project root).',
  },
  logLevel: {
    env: 'DIRECTOR_LOG_LEVEL',
    schema: Type.Union([
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ]),
    default: 'info',
    description: 'pino log level.',
  },
  defaultImage: {
    env: 'DIRECTOR_DEFAULT_IMAGE',
    schema: str(),
    default: 'director/base:latest',
    description: 'Image used when a create request names none.',
  },
  defaultCpu: {
    env: 'DIRECTOR_DEFAULT_CPU',
    schema: num(0.01, 64),
    default: 1,
    unit: 'cores',
    description: 'CPU quota when the request sets none.',
  },
  maxCpu: {
    env: 'DIRECTOR_MAX_CPU',
    schema: num(0.01, 64),
    default: 2,
    unit: 'cores',
    description: 'Largest CPU quota a request may ask for.',
  },
  defaultMemoryMb: {
    env: 'DIRECTOR_DEFAULT_MEMORY_MB',
    schema: int(6, 1_048_576),
    default: 512,
    unit: 'MiB',
    description: 'Memory limit (swap is set equal, so no swap) when the request sets none.',
  },
  maxMemoryMb: {
    env: 'DIRECTOR_MAX_MEMORY_MB',
    schema: int(6, 1_048_576),
    default: 8192,
    unit: 'MiB',
    description: 'Largest memory limit a request may ask for.',
  },
  defaultDiskMb: {
    env: 'DIRECTOR_DEFAULT_DISK_MB',
    schema: int(1, 1_048_576),
    default: 256,
    unit: 'MiB',
    description: 'Total size of the writable tmpfs mounts of a read-only-root sandbox when the request sets none.',
  },
  maxDiskMb: {
    env: 'DIRECTOR_MAX_DISK_MB',
    schema: int(1, 1_048_576),
    default: 4096,
    unit: 'MiB',
    description: 'Largest `disk` a request may ask for.',
  },
  defaultPids: {
    env: 'DIRECTOR_DEFAULT_PIDS',
    schema: int(8, 65_536),
    default: 256,
    unit: 'processes',
    description: 'Process (pids cgroup) limit when the request sets none.',
  },
  maxPids: {
    env: 'DIRECTOR_MAX_PIDS',
    schema: int(8, 65_536),
    default: 4096,
    unit: 'processes',
    description: 'Largest pids limit a request may ask for.',
  },
  defaultMaxDurationMs: {
    env: 'DIRECTOR_DEFAULT_MAX_DURATION_MS',
    schema: int(1000, 2_592_000_000),
    default: 3_600_000,
    unit: 'ms',
    description: 'Wall-time limit of a sandbox when the request sets none; the sandbox is killed when it ends.',
  },
  maxDurationMs: {
    env: 'DIRECTOR_MAX_DURATION_MS',
    schema: int(1000, 2_592_000_000),
    default: 86_400_000,
    unit: 'ms',
    description: 'Largest `maxDuration` a request may ask for.',
  },
  maxSandboxes: {
    env: 'DIRECTOR_MAX_SANDBOXES',
    schema: int(1, 100_000),
    default: 100,
    unit: 'sandboxes',
    description:
      'Sandboxes (running or starting) this host runs at most; creates beyond it get 503. Warm pool sandboxes only fill the room users leave: at the limit one gives way to a user create.',
  },
  nofile: {
    env: 'DIRECTOR_NOFILE',
    schema: int(64, 1_048_576),
    default: 1024,
    unit: 'descriptors',
    description: 'RLIMIT_NOFILE of sandbox processes.',
  },
  fsizeMb: {
    env: 'DIRECTOR_FSIZE_MB',
    schema: int(1, 1_048_576),
    default: 1024,
    unit: 'MiB',
    description: 'RLIMIT_FSIZE: largest file a sandbox process may write.',
  },
  logMaxBytes: {
    env: 'DIRECTOR_CONTAINER_LOG_MAX_BYTES',
    schema: int(4096, 1_073_741_824),
    default: 10_485_760,
    unit: 'bytes',
    description: "Cap of the engine-side log of a sandbox's main process.",
  },
  execTimeoutMs: {
    env: 'DIRECTOR_EXEC_TIMEOUT_MS',
    schema: int(100, 86_400_000),
    default: 30_000,
    unit: 'ms',
    description: 'Execute timeout when the request sets none.',
  },
  execAgent: {
    env: 'DIRECTOR_EXEC_AGENT',
    schema: Type.Union([Type.Literal('on'), Type.Literal('off')]),
    default: 'on',
    description:
      "`on`: every sandbox runs Director's exec agent (docs/agent.md) and executes go through it instead of `docker exec`; only with a local engine, and only when the agent executable exists (else executes use `docker exec`).",
  },
  agentBinary: {
    env: 'DIRECTOR_AGENT_BINARY',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description:
      'The exec agent executable (absolute). Empty: the one `images/agent/build.sh` builds, `.state/agent/director-agent` in the project.',
  },
  maxExecTimeoutMs: {
    env: 'DIRECTOR_MAX_EXEC_TIMEOUT_MS',
    schema: int(100, 86_400_000),
    default: 600_000,
    unit: 'ms',
    description: 'Largest execute timeout a request may ask for.',
  },
  execOutputLimitBytes: {
    env: 'DIRECTOR_EXEC_OUTPUT_LIMIT_BYTES',
    schema: int(1024, 1_073_741_824),
    default: 1_048_576,
    unit: 'bytes',
    description: 'Per-stream (stdout, stderr) output kept from one execute; the rest is cut and `truncated` is set.',
  },
  fileMaxBytes: {
    env: 'DIRECTOR_FILE_MAX_BYTES',
    schema: int(1024, 17_179_869_184),
    default: 67_108_864,
    unit: 'bytes',
    description: 'Largest upload or download through the files API.',
  },
  poolSize: {
    env: 'DIRECTOR_POOL_SIZE',
    schema: int(0, 1000),
    default: 2,
    unit: 'sandboxes',
    description:
      'Warm sandboxes kept started per pooled image, and per pooled image on each Director network a request asked for (0 disables the pool).',
  },
  poolImages: {
    env: 'DIRECTOR_POOL_IMAGES',
    schema: Type.String(),
    default: 'director/base:latest',
    description:
      "Comma-separated images the warm pool keeps ready (with the default limits; a claim is fitted to the request's memory, cpu, pids, disk, environment and workdir).",
  },
  reconcileIntervalMs: {
    env: 'DIRECTOR_RECONCILE_INTERVAL_MS',
    schema: int(1000, 86_400_000),
    default: 30_000,
    unit: 'ms',
    description: 'How often the runtime reconciles containers against its records.',
  },
  networkPool: {
    env: 'DIRECTOR_NETWORK_POOL',
    schema: str(),
    default: '10.231.0.0/16',
    description: 'IPv4 range Director allocates sandbox network subnets from (a /24 per created network, a /28 per isolated sandbox).',
  },
  nftTable: {
    env: 'DIRECTOR_NFT_TABLE',
    schema: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' }),
    default: 'director',
    description: "Name of Director's own `inet` nftables table.",
  },
  nftCheckIntervalMs: {
    env: 'DIRECTOR_NFT_CHECK_INTERVAL_MS',
    schema: int(100, 3_600_000),
    default: 2000,
    unit: 'ms',
    description:
      'How often the self-check verifies the nft table and hooks are in place (restoring them and emitting `policy_tampered` when not).',
  },
  alwaysDeniedOpen: {
    env: 'DIRECTOR_ALWAYS_DENIED_OPEN',
    schema: Type.String(),
    default: '',
    description:
      'Operator-level, comma-separated CIDRs removed from the always-denied ranges (metadata, loopback, link-local). Empty: nothing opened.',
  },
  dnsUpstream: {
    env: 'DIRECTOR_DNS_UPSTREAM',
    schema: Type.String(),
    default: '',
    description: '`address[:port]` the Director resolver forwards allowed names to. Empty: the first nameserver in /etc/resolv.conf.',
  },
  dnsPort: {
    env: 'DIRECTOR_DNS_PORT',
    schema: int(1, 65535),
    default: 53,
    description: 'Port of the Director resolver on each network gateway.',
  },
  networking: {
    env: 'DIRECTOR_NETWORKING',
    schema: Type.Union([Type.Literal('on'), Type.Literal('off')]),
    default: 'on',
    description: '`off` runs without the network layer (only `networkMode: none`); for engines whose host Director cannot firewall.',
  },
  adminPassword: {
    env: 'DIRECTOR_ADMIN_PASSWORD',
    schema: Type.String({ maxLength: 1024 }),
    default: '',
    description:
      'Password of the `admin` user created on first start (at least 12 characters). Empty: a random one is generated and printed once. Ignored once the admin exists. Secret.',
  },
  jwtSecret: {
    env: 'DIRECTOR_JWT_SECRET',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description:
      'HS256 signing key for access tokens (at least 32 bytes). Empty: a random key is generated once and kept in the store. Secret.',
  },
  jwtTtlMs: {
    env: 'DIRECTOR_TOKEN_TTL_MS',
    schema: int(60_000, 86_400_000),
    default: 900_000,
    unit: 'ms',
    description: 'Lifetime of access tokens from /v1/auth/login.',
  },
  rateLimitAuth: {
    env: 'DIRECTOR_RATE_LIMIT_AUTH',
    schema: int(1, 1_000_000),
    default: 5,
    unit: 'requests/min',
    description:
      'Authentication routes except refresh, and every refused credential; per client address (per user or key once authenticated).',
  },
  rateLimitRefresh: {
    env: 'DIRECTOR_RATE_LIMIT_REFRESH',
    schema: int(1, 1_000_000),
    default: 60,
    unit: 'requests/min',
    description: 'Token refreshes (POST /v1/auth/refresh), per client address; apart from the login budget.',
  },
  rateLimitSession: {
    env: 'DIRECTOR_RATE_LIMIT_SESSION',
    schema: int(1, 1_000_000),
    default: 100,
    unit: 'requests/min',
    description: 'Session operations, per user or key.',
  },
  rateLimitSandbox: {
    env: 'DIRECTOR_RATE_LIMIT_SANDBOX',
    schema: int(1, 1_000_000),
    default: 50,
    unit: 'requests/min',
    description: 'Sandbox operations (create, execute, stop, delete, files), per user or key.',
  },
  rateLimitGeneral: {
    env: 'DIRECTOR_RATE_LIMIT_GENERAL',
    schema: int(1, 1_000_000),
    default: 1000,
    unit: 'requests/min',
    description: 'Every other route, per user or key.',
  },
  bodyLimitBytes: {
    env: 'DIRECTOR_BODY_LIMIT_BYTES',
    schema: int(1024, 1_073_741_824),
    default: 1_048_576,
    unit: 'bytes',
    description: 'Largest JSON request body (413 beyond); file uploads use DIRECTOR_FILE_MAX_BYTES.',
  },
  shutdownGraceMs: {
    env: 'DIRECTOR_SHUTDOWN_GRACE_MS',
    schema: int(0, 600_000),
    default: 15_000,
    unit: 'ms',
    description: 'How long a graceful shutdown waits for requests and streams to drain.',
  },
  metricsToken: {
    env: 'DIRECTOR_METRICS_TOKEN',
    schema: Type.String(),
    default: '',
    description: 'Bearer token required for /metrics from non-loopback clients (empty: /metrics answers loopback only).',
  },
  eventRetentionDays: {
    env: 'DIRECTOR_EVENT_RETENTION_DAYS',
    schema: int(1, 3650),
    default: 30,
    unit: 'days',
    description: 'Security events older than this are deleted (hourly).',
  },
  sessionDefaultTimeoutMs: {
    env: 'DIRECTOR_SESSION_DEFAULT_TIMEOUT_MS',
    schema: int(1000, 31_536_000_000),
    default: 86_400_000,
    unit: 'ms',
    description:
      'Lifetime of a session whose `config.timeout` is unset; when it passes the session expires (its sandboxes stop, its runs are cancelled).',
  },
  sessionMaxTimeoutMs: {
    env: 'DIRECTOR_SESSION_MAX_TIMEOUT_MS',
    schema: int(1000, 31_536_000_000),
    default: 2_592_000_000,
    unit: 'ms',
    description: 'Largest `config.timeout` a session may ask for.',
  },
  secretsKey: {
    env: 'DIRECTOR_SECRETS_KEY',
    schema: Type.String({ pattern: '^(|[A-Za-z0-9+/=_-]{43,})$' }),
    default: '',
    description:
      'Key (32 bytes, base64 or base64url) that encrypts environment secrets and vault entries at rest. Empty: a random key is generated once into `secrets.key` in the data dir (mode 0600). Secret.',
  },
  contextItemMaxBytes: {
    env: 'DIRECTOR_CONTEXT_ITEM_MAX_BYTES',
    schema: int(1024, 67_108_864),
    default: 1_048_576,
    unit: 'bytes',
    description: 'Largest context item (its content in UTF-8); larger ones are refused with 413.',
  },
  contextMaxItems: {
    env: 'DIRECTOR_CONTEXT_MAX_ITEMS',
    schema: int(1, 1_000_000),
    default: 10_000,
    unit: 'items',
    description: 'Largest `config.maxSize` a context window may ask for (and its value when unset).',
  },
  checkpointMaxPerSession: {
    env: 'DIRECTOR_CHECKPOINT_MAX_PER_SESSION',
    schema: int(1, 100_000),
    default: 100,
    unit: 'checkpoints',
    description: 'Checkpoints a session keeps; creating one more is refused with 409 until one is deleted.',
  },
  checkpointMaxBytes: {
    env: 'DIRECTOR_CHECKPOINT_MAX_BYTES',
    schema: int(1024, 1_099_511_627_776),
    default: 1_073_741_824,
    unit: 'bytes',
    description: "Largest total size of the files one checkpoint captures; a session's files beyond it are refused with 413.",
  },
  checkpointTimeoutMs: {
    env: 'DIRECTOR_CHECKPOINT_TIMEOUT_MS',
    schema: int(1000, 86_400_000),
    default: 600_000,
    unit: 'ms',
    description:
      "Longest a checkpoint or a restore may spend on one sandbox mount; past it the sandbox's reader is killed and the request fails (a sandbox can stall its own reader).",
  },
  workflowMaxRunning: {
    env: 'DIRECTOR_WORKFLOW_MAX_RUNNING',
    schema: int(1, 10_000),
    default: 32,
    unit: 'runs',
    description:
      "Workflow runs this instance runs at once (each in a sandbox); more wait as `queued`, oldest first, as do runs beyond their department's `maxConcurrentTasks`.",
  },
  workflowDefaultTimeoutMs: {
    env: 'DIRECTOR_WORKFLOW_DEFAULT_TIMEOUT_MS',
    schema: int(1000, 604_800_000),
    default: 3_600_000,
    unit: 'ms',
    description: "A workflow run's timeout when its `config.timeout` is unset (counted from when it starts running).",
  },
  workflowOutputLimitBytes: {
    env: 'DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES',
    schema: int(0, 1_048_576),
    default: 65_536,
    unit: 'bytes',
    description:
      'Per-stream (stdout, stderr) output kept with each workflow step attempt: the first this many bytes (of the first DIRECTOR_EXEC_OUTPUT_LIMIT_BYTES the execute read); `truncated` marks a cut.',
  },
  wsAuthGraceMs: {
    env: 'DIRECTOR_WS_AUTH_GRACE_MS',
    schema: int(1, 600_000),
    default: 5000,
    unit: 'ms',
    description: 'How long a WebSocket without a bearer token at upgrade may take to send its `auth` message.',
  },
  allowedOrigins: {
    env: 'DIRECTOR_ALLOWED_ORIGINS',
    schema: Type.String(),
    default: '',
    description:
      "Comma-separated origins (`https://ui.example.com`, no wildcards) browsers may open WebSockets from. Empty: the server's own host only.",
    check: (value: string, name: string) => parseList(value).forEach((o) => normalizeOrigin(o, name)),
  },
  webhookAllowPrivate: {
    env: 'DIRECTOR_WEBHOOK_ALLOW_PRIVATE',
    schema: Type.Boolean(),
    default: false,
    description: '`true` lets webhooks target loopback, private, link-local and CGNAT addresses (never cloud metadata).',
  },
  webhookAllowedCidrs: {
    env: 'DIRECTOR_WEBHOOK_ALLOWED_CIDRS',
    schema: Type.String(),
    default: '',
    description: 'Comma-separated CIDRs webhooks may target whatever the SSRF guard says of them. Empty: none.',
    check: cidrList,
  },
  runtimeName: {
    env: 'DIRECTOR_RUNTIME_NAME',
    schema: Type.String(),
    default: 'default',
    description: 'Name of this Director instance; it labels every container so several instances can share one engine.',
  },
  llmProvider: {
    env: 'DIRECTOR_LLM_PROVIDER',
    schema: Type.Union([Type.Literal(''), Type.Literal('openai-compatible'), Type.Literal('anthropic')]),
    default: '',
    description:
      'The instance-wide LLM provider of chat agents: `openai-compatible` (OpenAI, Ollama, vLLM, llama.cpp, LM Studio) or `anthropic`. Empty: none (chat answers 503 unless an admin registered a provider). Nothing is sent anywhere by default.',
  },
  llmBaseUrl: {
    env: 'DIRECTOR_LLM_BASE_URL',
    schema: Type.String({ pattern: '^(|https?://[^\\s]+)$' }),
    default: '',
    description:
      'Base URL of the provider API (`http://127.0.0.1:11434/v1` for Ollama). Required for `openai-compatible`; empty for `anthropic` means https://api.anthropic.com/v1.',
  },
  llmApiKey: {
    env: 'DIRECTOR_LLM_API_KEY',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description: 'API key sent to the provider (never returned or logged). Secret.',
  },
  llmModel: {
    env: 'DIRECTOR_LLM_MODEL',
    schema: Type.String({ maxLength: 256 }),
    default: '',
    description: 'Model of agents that name none (required when DIRECTOR_LLM_PROVIDER is set).',
  },
  llmPricing: {
    env: 'DIRECTOR_LLM_PRICING',
    schema: Type.String({ maxLength: 65_536 }),
    default: '',
    description:
      'Prices per model as JSON, USD per million tokens: `{"model": {"input": 3, "output": 15}}`. A turn on a model listed here has a cost; others have `cost: null`.',
  },
  llmTimeoutMs: {
    env: 'DIRECTOR_LLM_TIMEOUT_MS',
    schema: int(1000, 3_600_000),
    default: 120_000,
    unit: 'ms',
    description:
      'Longest wait for the provider while it answers (its response, then each streamed part); the turn then ends with an `error` event.',
  },
  llmMaxRetries: {
    env: 'DIRECTOR_LLM_MAX_RETRIES',
    schema: int(0, 10),
    default: 2,
    description: 'Retries of a model request the provider refused with a retryable error (connection refused, 429, 5xx), with backoff.',
  },
  chatApprovalTimeoutMs: {
    env: 'DIRECTOR_CHAT_APPROVAL_TIMEOUT_MS',
    schema: int(1000, 86_400_000),
    default: 300_000,
    unit: 'ms',
    description: 'How long a tool call waits for approval; then it is denied (`timed_out`) and the model is told it did not run.',
  },
  chatToolOutputMaxBytes: {
    env: 'DIRECTOR_CHAT_TOOL_OUTPUT_MAX_BYTES',
    schema: int(256, 1_048_576),
    default: 16_384,
    unit: 'bytes',
    description:
      'Per stream (stdout, stderr, file content), what a tool result gives the model; the rest is cut and the result marked `truncated`.',
  },
  chatEventRetentionMs: {
    env: 'DIRECTOR_CHAT_EVENT_RETENTION_MS',
    schema: int(60_000, 2_592_000_000),
    default: 86_400_000,
    unit: 'ms',
    description:
      'How long streamed chat events are kept for resuming (`Last-Event-ID`, WebSocket `after`); messages are kept with the session.',
  },
} as const satisfies Record<string, Setting>;

type Settings = typeof SETTINGS;
export type Config = { -readonly [K in keyof Settings]: Static<Settings[K]['schema']> };

export class ConfigError extends Error {}

function coerce(setting: Setting, raw: string): unknown {
  const kind = (setting.schema as { type?: string }).type;
  if (kind === 'integer' || kind === 'number') return raw.trim() === '' ? Number.NaN : Number(raw);
  if (kind === 'boolean') {
    // `true`/`1`, `false`/`0` (any case); an empty variable is the default.
    const v = raw.trim().toLowerCase();
    return v === '' ? setting.default : v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : raw;
  }
  return raw;
}

/** Reads and validates configuration; `overrides` win over the environment (tests use them). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}, root = process.cwd()): Config {
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(SETTINGS) as [string, Setting][]) {
    const raw = env[setting.env];
    const value =
      key in overrides ? (overrides as Record<string, unknown>)[key] : raw === undefined ? setting.default : coerce(setting, raw);
    const issue = firstIssue(setting.schema, value);
    if (issue) throw new ConfigError(`${setting.env}=${JSON.stringify(raw ?? value)} is invalid: ${issue.message}`);
    try {
      setting.check?.(value as never, setting.env);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    out[key] = value;
  }
  const cfg = out as Config;
  cfg.dataDir = path.resolve(root, cfg.dataDir);
  for (const [d, m] of [
    ['defaultCpu', 'maxCpu'],
    ['defaultMemoryMb', 'maxMemoryMb'],
    ['defaultDiskMb', 'maxDiskMb'],
    ['defaultPids', 'maxPids'],
    ['defaultMaxDurationMs', 'maxDurationMs'],
    ['execTimeoutMs', 'maxExecTimeoutMs'],
  ] as const) {
    if (cfg[d] > cfg[m]) throw new ConfigError(`${SETTINGS[d].env} (${cfg[d]}) exceeds ${SETTINGS[m].env} (${cfg[m]})`);
  }
  return cfg;
}

export const allSettings = (): ReadonlyArray<Setting & { key: string }> =>
  Object.entries(SETTINGS).map(([key, s]) => ({ key, ...(s as Setting) }));
