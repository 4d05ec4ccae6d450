/**
 * Director's per-network DNS resolver: the only resolver a sandbox network can reach. It answers
 * the names the network's policy allows by forwarding them upstream, refuses every other name
 * without sending anything upstream (so data encoded into refused names never leaves the host),
 * refuses answers pointing at forbidden addresses (DNS rebinding), and hands every answered
 * address to `onAnswer` — the firewall sets — before the client sees it.
 */
import type { Logger } from 'pino';
import { systemClock } from '../../../core/clock.ts';
import { conflict } from '../../../core/errors.ts';
import { RCODE, SUPPORTED_QTYPES, clientUdpLimitBytes, encodeReply, parseQuery, qtypeName, withId, type ParsedQuery } from './codec.ts';
import { openListener, type ClientInfo, type DnsListener } from './listener.ts';
import { decideName } from './name-policy.ts';
import { DEFAULT_RATE_LIMIT, TokenBuckets } from './rate-limit.ts';
import { looksLikeTunnel } from './tunnel.ts';
import type { DenyReason, DnsAnswer, DnsDenied, ResolverDeps, ResolverStats } from './types.ts';
import { UpstreamClient, UpstreamError, type UpstreamReply } from './upstream.ts';
import { CLASS_IN, TYPE_A, TYPE_AAAA, formatAddress } from './wire.ts';

export type { DnsAnswer, DnsDenied, ResolverDeps, ResolverStats } from './types.ts';

export const DEFAULT_UPSTREAM_TIMEOUT_MS = 2000;
const MIN_TTL_S = 5;
const MAX_TTL_S = 3600;

interface Network {
  id: string;
  listener: DnsListener;
  closing: AbortController;
  log: Logger;
}

/** Addresses of the answer section, deduplicated (longest TTL kept), TTL clamped. */
function answerAddresses(reply: UpstreamReply): DnsAnswer['addresses'] {
  const byAddr = new Map<string, DnsAnswer['addresses'][number]>();
  for (const r of reply.message.records) {
    if (r.section !== 'answer' || r.klass !== CLASS_IN || (r.type !== TYPE_A && r.type !== TYPE_AAAA)) continue;
    const addr = formatAddress(r.rdata);
    const ttlS = Math.min(Math.max(r.ttl, MIN_TTL_S), MAX_TTL_S);
    const seen = byAddr.get(addr);
    if (!seen || seen.ttlS < ttlS) byAddr.set(addr, { addr, family: r.type === TYPE_A ? 4 : 6, ttlS });
  }
  return [...byAddr.values()];
}

const zeroStats = (): Omit<ResolverStats, 'networks'> => ({
  queries: 0,
  rateLimited: 0,
  malformed: 0,
  refused: 0,
  audited: 0,
  unsupported: 0,
  rebinding: 0,
  forwarded: 0,
  tcpFallbacks: 0,
  upstreamFailures: 0,
  answerHookFailures: 0,
  answered: 0,
  truncatedToClient: 0,
});

export class DirectorResolver implements AsyncDisposable {
  readonly #deps: ResolverDeps;
  readonly #log: Logger;
  readonly #upstream: UpstreamClient;
  readonly #limiter: TokenBuckets;
  readonly #refuseWith: 'REFUSED' | 'NXDOMAIN';
  readonly #networks = new Map<string, Network>();
  readonly #opening = new Set<string>();
  readonly #stats = zeroStats();

  constructor(deps: ResolverDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'dns-resolver' });
    this.#upstream = new UpstreamClient(deps.upstream, deps.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS);
    this.#limiter = new TokenBuckets(deps.rateLimit ?? DEFAULT_RATE_LIMIT, deps.clock ?? systemClock);
    this.#refuseWith = deps.refuseWith ?? 'REFUSED';
  }

  /**
   * Serves `networkId` on UDP and TCP `address`:`port` (port 0: an ephemeral port, the same for
   * both). Resolves with the bound port. Throws CONFLICT if the network is already served and
   * SERVICE_UNAVAILABLE if the address is not local or the port is taken.
   */
  async listen(networkId: string, address: string, port: number): Promise<{ port: number }> {
    if (this.#networks.has(networkId) || this.#opening.has(networkId)) {
      throw conflict(`DNS resolver already listening for network ${networkId}`, { networkId });
    }
    this.#opening.add(networkId);
    try {
      const log = this.#log.child({ networkId });
      const closing = new AbortController();
      const listener = await openListener(
        address,
        port,
        (packet, client) => this.#handle(networkId, closing.signal, log, packet, client),
        log,
      );
      this.#networks.set(networkId, { id: networkId, listener, closing, log });
      log.info({ address, port: listener.port }, 'dns resolver listening');
      return { port: listener.port };
    } finally {
      this.#opening.delete(networkId);
    }
  }

  /** Stops serving `networkId`; queries still waiting upstream get no reply. No-op if not served. */
  async close(networkId: string): Promise<void> {
    const net = this.#networks.get(networkId);
    if (!net) return;
    this.#networks.delete(networkId);
    net.closing.abort();
    await net.listener.close();
    this.#limiter.forget(`${networkId}|`);
    net.log.info('dns resolver closed');
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#networks.keys()].map((id) => this.close(id)));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeAll();
  }

  /** Counters since construction, all networks together. */
  stats(): ResolverStats {
    return { networks: this.#networks.size, ...this.#stats };
  }

  async #handle(networkId: string, closing: AbortSignal, log: Logger, packet: Buffer, client: ClientInfo): Promise<Buffer | null> {
    try {
      return await this.#resolve(networkId, closing, log, packet, client);
    } catch (err) {
      log.error({ err }, 'dns query handling failed');
      return null;
    }
  }

  #deny(log: Logger, ev: Omit<DnsDenied, 'suspectedTunnel'>): void {
    const full: DnsDenied = { ...ev, suspectedTunnel: ev.name !== '' && looksLikeTunnel(ev.name) };
    log.debug({ client: ev.client, name: ev.name, qtype: ev.qtype, reason: ev.reason, audit: ev.audit }, 'dns query denied');
    try {
      this.#deps.onDenied(full);
    } catch (err) {
      log.error({ err }, 'dns onDenied handler threw');
    }
  }

  #isForbidden(addr: string): boolean {
    try {
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(addr)?.[1];
      return this.#deps.isForbiddenAddress(addr) || (mapped !== undefined && this.#deps.isForbiddenAddress(mapped));
    } catch {
      return true; // an unanswerable question about an address: fail closed
    }
  }

  async #resolve(networkId: string, closing: AbortSignal, log: Logger, packet: Buffer, client: ClientInfo): Promise<Buffer | null> {
    const s = this.#stats;
    s.queries++;
    if (!this.#limiter.take(`${networkId}|${client.address}`)) {
      s.rateLimited++;
      return null;
    }
    const base = { networkId, client: client.address };
    const parsed = parseQuery(packet);
    if (!parsed.ok) {
      s.malformed++;
      log.debug({ client: client.address, bytes: packet.length, issue: parsed.issue }, 'malformed dns query');
      this.#deny(log, { ...base, name: '', qtype: '', reason: 'malformed', rcode: 'FORMERR', audit: false });
      return parsed.id === null ? null : encodeReply(null, parsed.id, RCODE.FORMERR);
    }
    const q = parsed.query;
    const denied = (reason: DenyReason, rcode: DnsDenied['rcode'], audit = false) =>
      this.#deny(log, { ...base, name: q.name, qtype: qtypeName(q.qtype), reason, rcode, audit });

    const policy = this.#deps.policyFor(networkId);
    const decision = decideName(policy, q.name);
    if (!decision.allowed) {
      const audit = policy?.mode === 'audit';
      denied(decision.reason, this.#refuseWith, audit);
      if (!audit) {
        s.refused++;
        return encodeReply(q, q.id, RCODE[this.#refuseWith]);
      }
      s.audited++;
    }
    if (q.opcode !== 0 || q.qclass !== CLASS_IN || !SUPPORTED_QTYPES.has(q.qtype)) {
      s.unsupported++;
      denied('unsupported', 'REFUSED');
      return encodeReply(q, q.id, RCODE.REFUSED);
    }
    return this.#forward(q, decision.matches, base, closing, log, client);
  }

  async #forward(
    q: ParsedQuery,
    matches: DnsAnswer['matches'],
    base: { networkId: string; client: string },
    closing: AbortSignal,
    log: Logger,
    client: ClientInfo,
  ): Promise<Buffer | null> {
    const s = this.#stats;
    s.forwarded++;
    let reply: UpstreamReply;
    try {
      reply = await this.#upstream.resolve(q, closing);
    } catch (err) {
      if (err instanceof UpstreamError && err.kind === 'aborted') return null;
      s.upstreamFailures++;
      // Per-query lines stay at debug (a sandbox controls their rate); stats() counts them.
      log.debug({ err, name: q.name, qtype: qtypeName(q.qtype) }, 'upstream dns failed: answering SERVFAIL');
      return encodeReply(q, q.id, RCODE.SERVFAIL);
    }
    if (reply.viaTcp) s.tcpFallbacks++;

    // Every section: a client may use additional-section addresses too.
    const forbidden = reply.message.records
      .filter((r) => r.type === TYPE_A || r.type === TYPE_AAAA)
      .map((r) => formatAddress(r.rdata))
      .filter((a) => this.#isForbidden(a));
    if (forbidden.length > 0) {
      s.rebinding++;
      log.debug({ name: q.name, addresses: forbidden }, 'upstream answered a forbidden address: refused');
      this.#deny(log, { ...base, name: q.name, qtype: qtypeName(q.qtype), reason: 'rebinding', rcode: 'REFUSED', audit: false });
      return encodeReply(q, q.id, RCODE.REFUSED);
    }

    const addresses = answerAddresses(reply);
    if (addresses.length > 0) {
      try {
        await this.#deps.onAnswer({ ...base, name: q.name, matches, addresses });
      } catch (err) {
        s.answerHookFailures++;
        log.error({ err, name: q.name }, 'firewall update for a dns answer failed: answering SERVFAIL');
        return encodeReply(q, q.id, RCODE.SERVFAIL);
      }
    }
    s.answered++;
    if (client.transport === 'udp' && reply.bytes.length > clientUdpLimitBytes(q)) {
      s.truncatedToClient++;
      return encodeReply(q, q.id, reply.message.rcode, { truncated: true });
    }
    return withId(reply.bytes, q.id);
  }
}
