/** Parsers for option values; each throws a UsageError naming the option. */
import { isIP } from 'node:net';
import { UsageError } from './errors.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `1500`, `1500ms`, `30s`, `5m`, `2h`, `1d` → milliseconds. */
export function durationMs(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new UsageError(`${flag} must be a duration like 30s, 5m, 2h or a number of milliseconds (got "${value}")`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
}

/** A duration back from now (`1h`) or an ISO 8601 time → ISO 8601. */
export function sinceTime(flag: string, value: string, nowMs = Date.now()): string {
  if (/^\d+(?:\.\d+)?(ms|s|m|h|d)$/.test(value.trim())) return new Date(nowMs - durationMs(flag, value)).toISOString();
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError(`${flag} must be a duration (1h, 7d) or an ISO 8601 time (got "${value}")`);
  return new Date(ms).toISOString();
}

export function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer (got "${value}")`);
  return n;
}

export function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number (got "${value}")`);
  return n;
}

/** `KEY=VALUE` pairs (repeatable options) → an object; later keys win. */
export function keyValues(flag: string, pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs?.length) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE (got "${p}")`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** Collects a repeatable option's values (commander's argParser). */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** The far end of a connection: an address or a host name, and a port when one was written. */
export interface Endpoint {
  address?: string;
  host?: string;
  port?: number;
}

/**
 * `HOST[:PORT]` → {@link Endpoint}: `203.0.113.10:443`, `api.example.test:443`, `10.0.0.1`,
 * `[2001:db8::1]:443`, or a bare IPv6 address (no port: write it in brackets to add one).
 * An IP address becomes `address`, anything else `host` (the server checks the name).
 */
export function endpoint(flag: string, value: string): Endpoint {
  const v = value.trim();
  const bad = (why: string) => new UsageError(`${flag} takes HOST[:PORT] or [IPV6]:PORT: ${why} (got "${value}")`);
  let host = v;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(v);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
    if (isIP(host) !== 6) throw bad('brackets are for an IPv6 address');
  } else if (v.split(':').length === 2) {
    [host, port] = v.split(':') as [string, string];
  }
  if (!host) throw bad('no host');
  const out: Endpoint = isIP(host) ? { address: host } : { host };
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 1 || n > 65_535) throw bad('the port must be 1-65535');
    out.port = n;
  }
  return out;
}
