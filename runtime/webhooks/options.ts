import type { Cidr } from '../../policies/address.ts';
import { parseCidrList, type LookupAll, type TargetPolicy } from './guard.ts';
import type { Transport } from './transport.ts';
import { parseList } from '../../core/validate.ts';

/** Webhook delivery settings; every duration in ms. */
export interface DispatcherOptions {
  /** Delay after the first failed attempt; doubles per attempt. Default 1000. */
  baseDelayMs: number;
  /** Largest delay between attempts. Default 300000 (5 min). */
  maxDelayMs: number;
  /** Attempts per delivery, the first included, before it is `failed`. Default 8. */
  maxAttempts: number;
  /** Up to this fraction of a retry delay is added at random. Default 0.1. */
  jitterRatio: number;
  /** Per-attempt timeout (connect, send, response headers). Default 10000. */
  timeoutMs: number;
  /** Pending deliveries per webhook; beyond it the oldest is dropped (counted and logged). Default 1000. */
  maxPendingPerWebhook: number;
  /** Webhooks with an attempt in flight at once. Default 16. */
  maxConcurrent: number;
  /** Finished deliveries kept in each webhook's log. Default 500. */
  logRetention: number;
  /** Webhooks per workspace. Default 50. */
  maxWebhooksPerWorkspace: number;
  /** Open loopback, private, link-local and CGNAT targets. Setting `DIRECTOR_WEBHOOK_ALLOW_PRIVATE`. Default false. */
  allowPrivateTargets: boolean;
  /** Open exactly these ranges. Setting `DIRECTOR_WEBHOOK_ALLOWED_CIDRS` (comma-separated). Default none. */
  allowedTargetCidrs: string[];
  /** DNS resolution (`dns.lookup` with `all: true` by default). */
  lookup?: LookupAll;
  /** The HTTP client (the guarded `node:http(s)` one by default). */
  transport?: Transport;
}

export const DISPATCHER_DEFAULTS = {
  baseDelayMs: 1000,
  maxDelayMs: 300_000,
  maxAttempts: 8,
  jitterRatio: 0.1,
  timeoutMs: 10_000,
  maxPendingPerWebhook: 1000,
  maxConcurrent: 16,
  logRetention: 500,
  maxWebhooksPerWorkspace: 50,
} as const;

const ENV_ALLOWED_CIDRS = 'DIRECTOR_WEBHOOK_ALLOWED_CIDRS';

/** The operator's webhook settings (runtime/config.ts, validated at boot). */
export interface WebhookSettings {
  webhookAllowPrivate?: boolean;
  /** Comma-separated CIDRs. */
  webhookAllowedCidrs?: string;
}

/** Defaults, then the operator's settings, then `overrides`. Throws naming the option on a bad value. */
export function resolveOptions(overrides: Partial<DispatcherOptions> = {}, settings: WebhookSettings = {}): DispatcherOptions {
  const opts: DispatcherOptions = {
    ...DISPATCHER_DEFAULTS,
    allowPrivateTargets: settings.webhookAllowPrivate ?? false,
    allowedTargetCidrs: parseList(settings.webhookAllowedCidrs ?? ''),
    ...overrides,
  };
  for (const k of [
    'baseDelayMs',
    'maxDelayMs',
    'maxAttempts',
    'timeoutMs',
    'maxPendingPerWebhook',
    'maxConcurrent',
    'logRetention',
    'maxWebhooksPerWorkspace',
  ] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1)
      throw new Error(`webhook option ${k} must be a positive integer (got ${String(opts[k])})`);
  }
  targetPolicy(opts);
  return opts;
}

/** The SSRF guard's view of the options; throws naming `DIRECTOR_WEBHOOK_ALLOWED_CIDRS` on a bad CIDR. */
export function targetPolicy(o: Pick<DispatcherOptions, 'allowPrivateTargets' | 'allowedTargetCidrs'>): TargetPolicy {
  const allowedTargetCidrs: Cidr[] = parseCidrList(o.allowedTargetCidrs.join(','), ENV_ALLOWED_CIDRS);
  return { allowPrivateTargets: o.allowPrivateTargets, allowedTargetCidrs };
}
