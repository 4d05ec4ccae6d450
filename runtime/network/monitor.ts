import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { EventSink, Severity } from '../events.ts';
import type { NetworkRecord, NetworkStore } from '../store/networks.ts';
import { DenyLogReader, EventRateLimiter, type TimedDenyRecord } from './denylog.ts';

export interface DenyMonitorDeps {
  store: NetworkStore;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  /** Events per (sandbox, rule) per second after the burst. */
  perKeyPerSecond?: number;
  burst?: number;
}

/**
 * Turns the kernel's deny log into security events: `egress_denied` / `ingress_denied` for
 * drops (naming network, sandbox by address, destination, port, protocol and rule), and in audit
 * mode `egress_audit` / `ingress_audit` for what would have been dropped, which also feeds the
 * observations the policy proposal is built from. nft already rate-limits the log per rule;
 * this adds a per-(sandbox, rule) bucket so one noisy sandbox cannot flood the stream, and
 * reports how many records it suppressed.
 */
export class DenyMonitor {
  private readonly deps: DenyMonitorDeps;
  private readonly reader = new DenyLogReader({ onError: (err) => this.deps.logger.warn({ err }, 'deny log reader error') });
  private readonly limiter: EventRateLimiter;
  private readonly byShort = new Map<string, NetworkRecord | null>();
  private running = false;

  constructor(deps: DenyMonitorDeps) {
    this.deps = deps;
    this.limiter = new EventRateLimiter(deps.perKeyPerSecond ?? 5, deps.burst ?? 20, deps.clock);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.reader.start((r) => this.onRecord(r));
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.reader.stop();
  }

  private network(short: string): NetworkRecord | null {
    if (!this.byShort.has(short) || this.byShort.get(short) === null) this.byShort.set(short, this.deps.store.byShort(short));
    return this.byShort.get(short) ?? null;
  }

  /** Public for tests: handles one parsed deny record. */
  onRecord(r: TimedDenyRecord): void {
    const net = this.network(r.short);
    if (!net) return;
    const tag = r.tag;
    const inbound = tag.kind === 'rule' ? tag.direction === 'inbound' : tag.chain === 'in';
    const toHost = tag.kind === 'guard' && tag.chain === 'host';
    const sandboxAddr = inbound ? r.dst : r.src;
    const sandbox = this.deps.store.sandboxByAddress(net.id, sandboxAddr);
    const remote = inbound ? r.src : r.dst;
    const proto = r.proto;
    if (r.audit)
      this.deps.store.observe(
        { networkId: net.id, direction: inbound ? 'inbound' : 'outbound', proto, remote, port: inbound ? 0 : (r.dstPort ?? 0) },
        this.deps.clock.nowMs(),
      );
    const key = `${sandbox?.id ?? sandboxAddr}|${r.rawTag}|${r.audit ? 'a' : 'd'}`;
    if (!this.limiter.take(key)) return;
    const suppressed = this.limiter.resetSuppressed(key);
    const type = `${inbound ? 'ingress' : 'egress'}_${r.audit ? 'audit' : 'denied'}`;
    const severity: Severity = r.audit
      ? 'low'
      : tag.kind === 'guard' && (tag.guard === 'range' || tag.guard === 'host' || tag.guard === 'xnet' || tag.guard === 'dns')
        ? 'high'
        : 'medium';
    this.deps.events.emit({
      type,
      severity,
      workspace: sandbox?.workspace ?? net.workspace,
      sandboxId: sandbox?.id ?? null,
      networkId: net.id,
      details: {
        network: net.privateFor ? `isolated:${net.privateFor}` : net.name,
        source: r.src,
        destination: toHost ? `host:${r.dst}` : r.dst,
        port: r.dstPort,
        protocol: proto,
        rule: tag.kind === 'rule' ? `${tag.direction}[${tag.index}]` : `guard:${tag.guard}`,
        chain: tag.kind === 'rule' ? (inbound ? 'in' : 'out') : tag.chain,
        bytes: r.bytes,
        ...(r.audit ? { wouldDrop: true } : {}),
        ...(suppressed ? { suppressedSinceLast: suppressed } : {}),
      },
    });
  }
}
