import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { cidrContains, parseCidr, parseIp, type Cidr } from '../../policies/address.ts';
import { validateNetworkPolicy, type NetworkPolicy } from '../../policies/network-policy.ts';
import type { AlwaysDenied } from '../../netfilter/model.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventSink } from '../events.ts';
import type { NetworkRecord, NetworkStore } from '../store/networks.ts';
import { DirectorResolver } from './dns/resolver.ts';
import type { Firewall } from './firewall.ts';

export interface DnsControllerDeps {
  upstream: string;
  port: number;
  store: NetworkStore;
  firewall: Firewall;
  events: EventSink;
  alwaysDenied: AlwaysDenied;
  clock: Clock;
  logger: Logger;
}

/** `address[:port]` of the upstream; empty: the first nameserver of /etc/resolv.conf. */
export function parseUpstream(text: string): { address: string; port: number } {
  let t = text.trim();
  if (!t) {
    const conf = (() => {
      try {
        return readFileSync('/etc/resolv.conf', 'utf8');
      } catch {
        return '';
      }
    })();
    t = /^nameserver\s+(\S+)/m.exec(conf)?.[1] ?? '127.0.0.1';
  }
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracket) return { address: bracket[1]!, port: Number(bracket[2] ?? 53) };
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(t);
  if (v4) return { address: v4[1]!, port: Number(v4[2] ?? 53) };
  return { address: t, port: 53 };
}

/** An isolated network answers no name at all. */
const DENY_ALL: NetworkPolicy = validateNetworkPolicy({ name: 'isolated', outbound: [], inbound: [] });

/**
 * Glue between the Director resolver and the rest: which policy applies to a network, which
 * addresses must never be answered (always-denied ranges and Director's own subnets: the
 * rebinding guard), refusals as `dns_denied` events, and answers into the nft name sets before
 * the reply leaves (so the connection that follows passes).
 */
export function createDnsController(deps: DnsControllerDeps) {
  const denied: Cidr[] = [...deps.alwaysDenied.v4, ...deps.alwaysDenied.v6].map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  const isForbidden = (addr: string): boolean => {
    let ip = parseIp(addr);
    if (!ip) return true;
    // IPv4-mapped IPv6 is judged as the IPv4 address it carries.
    if (ip.family === 6 && ip.value >> 32n === 0xffffn) ip = { family: 4, value: ip.value & 0xffffffffn };
    const host: Cidr = { ...ip, len: ip.family === 4 ? 32 : 128 };
    if (denied.some((c) => cidrContains(c, host))) return true;
    return deps.store.active().some((r) => {
      const c = parseCidr(r.subnet);
      return c !== null && cidrContains(c, host);
    });
  };
  const resolver = new DirectorResolver({
    upstream: parseUpstream(deps.upstream),
    policyFor: (id) => {
      const rec = deps.store.byId(id);
      if (!rec || rec.isolated) return DENY_ALL;
      return rec.policy;
    },
    isForbiddenAddress: isForbidden,
    onDenied: (ev) => {
      const rec = deps.store.byId(ev.networkId);
      const sandbox = rec ? deps.store.sandboxByAddress(rec.id, ev.client) : null;
      deps.events.emit({
        type: 'dns_denied',
        severity: ev.suspectedTunnel || ev.reason === 'rebinding' ? 'high' : ev.audit ? 'low' : 'medium',
        workspace: sandbox?.workspace ?? rec?.workspace ?? null,
        sandboxId: sandbox?.id ?? null,
        networkId: ev.networkId,
        details: {
          name: ev.name.slice(0, 253),
          qtype: ev.qtype,
          reason: ev.reason,
          rcode: ev.rcode,
          suspectedTunnel: ev.suspectedTunnel,
          client: ev.client,
          ...(ev.audit ? { audit: true, wouldDrop: true } : {}),
        },
      });
    },
    onAnswer: async (ev) => {
      const rec = deps.store.byId(ev.networkId);
      if (!rec) throw new Error('network gone');
      const now = deps.clock.nowMs();
      for (const a of ev.addresses) deps.store.observeDns(rec.id, ev.name, a.addr, now);
      // Every rule naming it, allow or deny, either direction: each then matches these addresses
      // in its turn, so the kernel's first match is the policy's.
      const hosts = new Set(ev.matches.map((m) => m.host));
      for (const host of hosts)
        await deps.firewall.allowResolved(
          rec,
          host,
          ev.addresses.map((a) => ({ addr: a.addr, timeoutS: a.ttlS })),
        );
    },
    logger: deps.logger,
    clock: deps.clock,
  });
  return {
    resolver,
    listen: async (r: NetworkRecord) => {
      await resolver.listen(r.id, r.gateway, deps.port);
    },
    close: (r: NetworkRecord) => resolver.close(r.id),
    closeAll: () => resolver.closeAll(),
  };
}
