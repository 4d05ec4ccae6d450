/** The resolver's contract with the rest of Director: what it needs and what it reports. */
import type { Logger } from 'pino';
import type { NameRuleRef, NetworkPolicy } from '../../../policies/network-policy.ts';
import type { Clock } from '../../../core/clock.ts';
import type { RateLimitOptions } from './rate-limit.ts';

export type DenyReason = 'not_allowed' | 'denied_by_rule' | 'rebinding' | 'malformed' | 'unsupported';

/** A query Director refused (or, in audit mode, would have refused). Becomes a `dns_denied` event. */
export interface DnsDenied {
  networkId: string;
  /** The client's address (no port). */
  client: string;
  /** Lowercase, no trailing dot; '' when the packet had no readable question. */
  name: string;
  /** Query type mnemonic (`A`, `TXT`, `ANY`, `TYPE65534`); '' when unreadable. */
  qtype: string;
  reason: DenyReason;
  /** The name looks like data encoded for DNS tunnelling (see `looksLikeTunnel`). */
  suspectedTunnel: boolean;
  /** What the client got (or, when `audit`, would have got). */
  rcode: 'REFUSED' | 'NXDOMAIN' | 'FORMERR';
  /** The network's policy is in audit mode: the name was reported, then resolved anyway. */
  audit: boolean;
}

/** Addresses about to be answered for an allowed name; the firewall sets must hold them first. */
export interface DnsAnswer {
  networkId: string;
  client: string;
  /** The queried name, lowercase, no trailing dot. */
  name: string;
  /** Every name rule covering the name (empty when the network has no policy). */
  matches: NameRuleRef[];
  /** Every A/AAAA of the answer section (CNAME chains included); TTL clamped to 5-3600 s. */
  addresses: { addr: string; family: 4 | 6; ttlS: number }[];
}

export interface ResolverDeps {
  /** Where allowed names are forwarded (UDP, TCP when the reply is truncated). */
  upstream: { address: string; port: number };
  /** The network's policy; null = no policy: every name may be forwarded. */
  policyFor(networkId: string): NetworkPolicy | null;
  /** Addresses that must never be answered (rebinding guard): always-denied ranges + Director subnets. */
  isForbiddenAddress(addr: string): boolean;
  onDenied(ev: DnsDenied): void;
  /** Awaited before the reply is sent; a rejection turns the reply into SERVFAIL. */
  onAnswer(ev: DnsAnswer): Promise<void>;
  logger: Logger;
  /** Drives the rate limiter. Default: the system clock. */
  clock?: Clock;
  /** Bound on one upstream exchange (UDP and TCP retry together). Default 2000. */
  upstreamTimeoutMs?: number;
  /** What a refused name gets. Default REFUSED; NXDOMAIN makes it look nonexistent. */
  refuseWith?: 'REFUSED' | 'NXDOMAIN';
  /** Per-client-address token bucket. Default 200 queries/s, burst 400. */
  rateLimit?: RateLimitOptions;
}

export interface ResolverStats {
  /** Listening networks. */
  networks: number;
  /** Packets received, dropped ones included. */
  queries: number;
  /** Dropped silently: the client was over its rate. */
  rateLimited: number;
  /** Unparseable packets (answered FORMERR when a header was readable, else dropped). */
  malformed: number;
  /** Refused by the name policy (enforce mode). */
  refused: number;
  /** Would have been refused, resolved because the policy is in audit mode. */
  audited: number;
  /** Refused: query type, class or opcode Director does not resolve. */
  unsupported: number;
  /** Refused: the upstream answered a forbidden address. */
  rebinding: number;
  /** Sent upstream. */
  forwarded: number;
  /** Upstream UDP replies that were truncated and retried over TCP. */
  tcpFallbacks: number;
  /** Upstream timeouts and errors (answered SERVFAIL). */
  upstreamFailures: number;
  /** onAnswer rejected (answered SERVFAIL). */
  answerHookFailures: number;
  /** Upstream replies passed to the client. */
  answered: number;
  /** Replies too large for the client's UDP size, sent truncated so it retries over TCP. */
  truncatedToClient: number;
}
