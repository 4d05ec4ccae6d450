import http from 'node:http';
import https from 'node:https';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { checkUrl, resolveChecked, TargetRefusedError, type LookupAll, type TargetPolicy } from './guard.ts';

/** One delivery attempt on the wire. */
export interface TransportRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Aborts the attempt: the per-attempt timeout and shutdown. */
  signal: AbortSignal;
}

/** Resolves with the response status; rejects on refusal, DNS, connection errors and abort. */
export type Transport = (req: TransportRequest) => Promise<{ statusCode: number }>;

/** Bytes of a response body read (and discarded) before the connection is closed. */
const MAX_RESPONSE_BYTES = 65_536;

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * The production transport: `node:http(s)` with the SSRF guard inside the connection's DNS
 * lookup. Checking names first and then calling `fetch` would leave a window in which a DNS
 * answer can change (rebinding); here the addresses checked are the ones connected to. IP-literal
 * hosts (which skip DNS) are checked before connecting. Redirects are never followed (a 3xx is
 * a failed attempt), a fresh connection is used per attempt, and the response body is drained
 * up to 64 KiB and ignored.
 */
export function httpTransport(policy: TargetPolicy, lookup: LookupAll): Transport {
  const guardedLookup = (hostname: string, options: LookupOptions, cb: LookupCallback): void => {
    resolveChecked(hostname, policy, lookup).then(
      (addrs) => {
        const usable = options.family === 4 || options.family === 6 ? addrs.filter((a) => a.family === options.family) : addrs;
        if (usable.length === 0)
          return cb(Object.assign(new Error(`${hostname}: no IPv${String(options.family)} address`), { code: 'ENOTFOUND' }), []);
        if (options.all) return cb(null, usable);
        return cb(null, usable[0]!.address, usable[0]!.family);
      },
      (err: NodeJS.ErrnoException) => cb(err, []),
    );
  };

  return (req) =>
    new Promise((resolve, reject) => {
      const checked = checkUrl(req.url, policy);
      if ('issue' in checked) return reject(new TargetRefusedError(`url ${checked.issue}`));
      const { url } = checked.target;
      const client = url.protocol === 'https:' ? https : http;
      const out = client.request(
        url,
        {
          method: 'POST',
          headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
          agent: false,
          lookup: guardedLookup,
          signal: req.signal,
        },
        (res) => {
          let seen = 0;
          res.on('data', (chunk: Buffer) => {
            seen += chunk.length;
            if (seen > MAX_RESPONSE_BYTES) res.destroy();
          });
          res.on('error', () => undefined);
          resolve({ statusCode: res.statusCode ?? 0 });
        },
      );
      out.on('error', reject);
      out.end(req.body);
    });
}
