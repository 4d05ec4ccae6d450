import type { Logger } from 'pino';
import { applyTable, readTable } from '../../netfilter/apply.ts';
import { addResolvedAddresses, compileNetwork, compileRemoveNetwork, type ResolvedAddress } from '../../netfilter/compile.ts';
import { networkNameSets } from '../../netfilter/rules.ts';
import type { AlwaysDenied, NetfilterInput, NetworkInput } from '../../netfilter/model.ts';
import { BASE_CHAINS, chainName, CHAIN_KINDS } from '../../netfilter/names.ts';
import { applyDocument, runNft, tableExists } from '../../netfilter/nft.ts';
import type { NetworkView, TableView } from '../../netfilter/readback.ts';
import type { Clock } from '../clock.ts';
import { DirectorError } from '../errors.ts';
import type { EventSink } from '../events.ts';
import type { NetworkRecord, NetworkStore } from '../store/networks.ts';

export interface FirewallDeps {
  table: string;
  alwaysDenied: AlwaysDenied;
  dnsPort: number;
  store: NetworkStore;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  checkIntervalMs: number;
}

/** The compiler's view of one network record. */
export function toNetworkInput(r: NetworkRecord, dnsPort: number): NetworkInput {
  return {
    id: r.id,
    short: r.short,
    bridge: r.bridge,
    subnetV4: r.subnet,
    gatewayV4: r.gateway,
    isolated: r.isolated,
    policy: r.policy,
    dns: r.enableDns ? { address: r.gateway, port: dnsPort } : null,
  };
}

/**
 * Director's nftables table: built from the store at boot, changed one atomic transaction at a
 * time (one writer, serialized here), and watched. The self-check notices when the table or its
 * hooks vanish (`nft flush ruleset`, say), restores them and emits `policy_tampered`; until then
 * new sandboxes are refused (fail closed).
 */
export class Firewall {
  private readonly deps: FirewallDeps;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private booted = false;
  private tampered = false;
  /** Shorts of the networks whose chains this firewall has put in place (what the self-check expects). */
  private readonly applied = new Set<string>();
  /** Name sets each network has in the kernel, as last applied: no table read is needed per change. */
  private readonly nameSets = new Map<string, string[]>();

  constructor(deps: FirewallDeps) {
    this.deps = deps;
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  get alwaysDenied(): AlwaysDenied {
    return this.deps.alwaysDenied;
  }

  /** Runs `fn` after every change queued before it: the table has exactly one writer. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  input(): NetfilterInput {
    return {
      table: this.deps.table,
      networks: this.deps.store.active().map((r) => toNetworkInput(r, this.deps.dnsPort)),
      alwaysDenied: this.deps.alwaysDenied,
    };
  }

  /**
   * Rebuilds the whole table from the store (one transaction), keeping the addresses resolved
   * for allowed names, then verifies the result against the store.
   */
  async boot(): Promise<string[]> {
    const problems = await this.serial(async () => {
      const before = await this.readOrNull();
      const input = this.input();
      await applyTable(input);
      this.remember(input.networks);
      await this.restoreNameSets(input, before);
      return this.verify(input);
    });
    this.booted = true;
    if (problems.length) this.log.error({ problems }, 'nft table differs from the store after rebuild');
    this.timer = setInterval(() => void this.selfCheck().catch((err: unknown) => this.log.error({ err }, 'nft self-check failed')), this.deps.checkIntervalMs);
    this.timer.unref();
    return problems;
  }

  /** Deletes Director's table (graceful shutdown with no network left). */
  async dropTable(): Promise<void> {
    await this.serial(async () => {
      if (await tableExists(this.deps.table)) await runNft(['delete', 'table', 'inet', this.deps.table]);
      this.applied.clear();
      this.nameSets.clear();
    });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async readOrNull(): Promise<TableView | null> {
    try {
      return await readTable(this.deps.table);
    } catch {
      return null;
    }
  }

  private async restoreNameSets(input: NetfilterInput, before: TableView | null): Promise<void> {
    if (!before) return;
    for (const net of input.networks) {
      for (const set of Object.values(before.networks[net.short]?.sets ?? {})) {
        const live = set.elements.filter((e) => (e.expiresS ?? e.timeoutS ?? 0) > 0).map((e) => ({ addr: e.addr, timeoutS: e.expiresS ?? e.timeoutS ?? 1 }));
        if (!set.host || live.length === 0) continue;
        try {
          await applyDocument(addResolvedAddresses(input.table, net, { host: set.host }, live));
        } catch {
          // the pattern left the policy: nothing to restore
        }
      }
    }
  }

  /** Differences between the kernel's table and what the store says should be there. */
  async verify(input: NetfilterInput = this.input()): Promise<string[]> {
    const view = await this.readOrNull();
    if (!view) return [`table inet ${input.table} is missing`];
    const problems: string[] = [];
    for (const net of input.networks) {
      const got = view.networks[net.short];
      if (!got) {
        problems.push(`network ${net.id} (${net.short}) has no chains`);
        continue;
      }
      if (got.bridge !== net.bridge) problems.push(`network ${net.short}: bridge ${got.bridge ?? 'none'} instead of ${net.bridge}`);
      if (got.isolated !== net.isolated) problems.push(`network ${net.short}: isolated=${got.isolated}, expected ${net.isolated}`);
      if ((got.mode ?? null) !== (net.policy?.mode ?? null)) problems.push(`network ${net.short}: mode ${got.mode ?? 'none'}, expected ${net.policy?.mode ?? 'none'}`);
      if (net.policy && (got.outbound.length !== net.policy.outbound.length || got.inbound.length !== net.policy.inbound.length)) {
        problems.push(`network ${net.short}: ${got.outbound.length}/${got.inbound.length} rules in force, policy has ${net.policy.outbound.length}/${net.policy.inbound.length}`);
      }
    }
    const expected = new Set(input.networks.map((n) => n.short));
    for (const short of Object.keys(view.networks)) if (!expected.has(short)) problems.push(`chains for unknown network ${short}`);
    return problems;
  }

  private remember(networks: NetworkInput[]): void {
    this.applied.clear();
    this.nameSets.clear();
    for (const n of networks) {
      this.applied.add(n.short);
      this.nameSets.set(n.short, networkNameSets(n).map((x) => x.name));
    }
  }

  /**
   * Creates or updates one network's chains (policy change, isolation) in one transaction that
   * touches nothing else: cost does not grow with the number of networks.
   */
  async sync(record: NetworkRecord): Promise<void> {
    await this.serial(async () => {
      const net = toNetworkInput(record, this.deps.dnsPort);
      const input: NetfilterInput = { table: this.deps.table, networks: [net], alwaysDenied: this.deps.alwaysDenied };
      await applyDocument(compileNetwork(input, net, this.nameSets.get(net.short) ?? []));
      this.applied.add(net.short);
      this.nameSets.set(net.short, networkNameSets(net).map((x) => x.name));
    });
  }

  /** Removes every trace of a network from the table. */
  async remove(record: NetworkRecord): Promise<void> {
    await this.serial(async () => {
      const net = toNetworkInput(record, this.deps.dnsPort);
      this.applied.delete(net.short);
      await applyDocument(compileRemoveNetwork(this.deps.table, net, this.nameSets.get(net.short) ?? []));
      this.nameSets.delete(net.short);
    });
  }

  /** Adds resolved addresses of an allowed host pattern to the network's name sets. */
  async allowResolved(record: NetworkRecord, host: string, addresses: ResolvedAddress[]): Promise<void> {
    const doc = addResolvedAddresses(this.deps.table, toNetworkInput(record, this.deps.dnsPort), { host }, addresses);
    await this.serial(() => applyDocument(doc));
  }

  /** The policy in force for a network, read from the kernel. */
  async view(record: NetworkRecord): Promise<NetworkView | null> {
    const t = await this.readOrNull();
    return t?.networks[record.short] ?? null;
  }

  async table(): Promise<TableView | null> {
    return this.readOrNull();
  }

  /** Throws (503) while new sandboxes must be refused. */
  assertReady(): void {
    if (!this.booted) throw new DirectorError('SERVICE_UNAVAILABLE', 'network enforcement is not in place yet');
    if (this.tampered) throw new DirectorError('SERVICE_UNAVAILABLE', 'network enforcement was tampered with and is being restored; retry shortly');
  }

  get status(): { booted: boolean; tampered: boolean } {
    return { booted: this.booted, tampered: this.tampered };
  }

  /** Which of the table's base chains and network chains exist right now (one cheap `nft` call). */
  private async presentChains(): Promise<Map<string, string | null>> {
    const out = JSON.parse(await runNft(['-j', 'list', 'chains', 'inet'])) as { nftables?: { chain?: { table: string; name: string; hook?: string } }[] };
    const chains = new Map<string, string | null>();
    for (const item of out.nftables ?? []) if (item.chain?.table === this.deps.table) chains.set(item.chain.name, item.chain.hook ?? null);
    return chains;
  }

  /** Detects a missing table, hook or network chain and restores the whole table. */
  async selfCheck(): Promise<boolean> {
    if (!this.booted) return true;
    return this.serial(async () => {
      const chains = await this.presentChains();
      const missing: string[] = [];
      if (chains.get(BASE_CHAINS.forward) !== 'forward') missing.push(BASE_CHAINS.forward);
      if (chains.get(BASE_CHAINS.input) !== 'input') missing.push(BASE_CHAINS.input);
      for (const short of this.applied) for (const k of CHAIN_KINDS) if (!chains.has(chainName(short, k))) missing.push(chainName(short, k));
      if (missing.length === 0) return true;
      this.tampered = true;
      this.log.error({ missing: missing.slice(0, 10) }, 'nft table tampered with: restoring');
      this.deps.events.emit({ type: 'policy_tampered', severity: 'critical', details: { table: this.deps.table, missing: missing.slice(0, 50), missingCount: missing.length } });
      const input = this.input();
      await applyTable(input);
      this.remember(input.networks);
      const problems = await this.verify(input);
      if (problems.length === 0) {
        this.tampered = false;
        this.deps.events.emit({ type: 'policy_restored', severity: 'info', details: { table: this.deps.table } });
      } else {
        this.log.error({ problems }, 'nft table restore incomplete');
      }
      return false;
    });
  }
}
