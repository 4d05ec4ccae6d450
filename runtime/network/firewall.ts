import type { Logger } from 'pino';
import { applyTable, readTable } from '../../netfilter/apply.ts';
import {
  addResolvedAddresses,
  compileNetwork,
  compileRemoveNetwork,
  compileRetire,
  type ResolvedAddress,
} from '../../netfilter/compile.ts';
import type { NftCommand } from '../../netfilter/json.ts';
import { networkNameSets, unusedNameSets } from '../../netfilter/rules.ts';
import type { AlwaysDenied, NetfilterInput, NetworkInput } from '../../netfilter/model.ts';
import { BASE_CHAINS, chainName, CHAIN_KINDS, genChainName } from '../../netfilter/names.ts';
import { NetlinkHelpers } from '../../netfilter/netlink-helpers.ts';
import { applyDocument, runNft, tableExists, type NftOptions } from '../../netfilter/nft.ts';
import type { NetworkView, TableView } from '../../netfilter/readback.ts';
import type { Clock } from '../../core/clock.ts';
import { DirectorError } from '../../core/errors.ts';
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
  /** Delay before a replaced policy generation is deleted from the kernel (default {@link RETIRE_DELAY_MS}). */
  retireDelayMs?: number;
  /** Options for every document applied (the benchmark compares nft's syntax with JSON through it). */
  nft?: NftOptions;
}

/**
 * A replaced generation is deleted this long after the change that replaced it, so a burst of
 * changes is not slowed by deletions (each costs the kernel a grace period) and one transaction
 * retires them all.
 */
export const RETIRE_DELAY_MS = 250;
/** More retired generations than this on one network are deleted before its next change. */
export const MAX_RETIRED = 16;

/** What this firewall put in the kernel for one network. */
interface NetState {
  /** The generation in force. */
  gen: number;
  /** Name sets the policy in force uses. */
  sets: string[];
  /** Generations replaced but not yet deleted. */
  retired: number[];
  /** Name sets no longer used, not yet deleted. */
  staleSets: Set<string>;
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
  /** Per network short: what this firewall has put in place (what the self-check expects); no table read is needed per change. */
  private readonly nets = new Map<string, NetState>();
  private retireTimer: NodeJS.Timeout | null = null;
  /** The processes that carry policy changes to the kernel over netlink; ended by {@link close}. */
  private readonly netlink: NetlinkHelpers;

  constructor(deps: FirewallDeps) {
    this.deps = deps;
    this.netlink = new NetlinkHelpers({ clock: deps.clock });
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  /** The options every document is applied with; a change that left the netlink path is logged. */
  private nftOptions(): NftOptions {
    return {
      netlink: this.netlink,
      ...this.deps.nft,
      onNetlinkFallback:
        this.deps.nft?.onNetlinkFallback ??
        ((reason) => this.log.warn({ reason }, 'nft change applied through nft: the netlink path could not apply it')),
    };
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
    this.timer = setInterval(
      () => void this.selfCheck().catch((err: unknown) => this.log.error({ err }, 'nft self-check failed')),
      this.deps.checkIntervalMs,
    );
    this.timer.unref();
    return problems;
  }

  /** Deletes Director's table (graceful shutdown with no network left). */
  async dropTable(): Promise<void> {
    await this.serial(async () => {
      if (await tableExists(this.deps.table)) await runNft(['delete', 'table', 'inet', this.deps.table]);
      this.nets.clear();
    });
  }

  /**
   * Stops the timers and ends the netlink helpers (later changes go through `nft`). Replaced
   * generations not yet retired stay in the kernel until the next boot rebuilds the table.
   */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.cancelRetire();
    this.netlink.close();
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
        const live = set.elements
          .filter((e) => (e.expiresS ?? e.timeoutS ?? 0) > 0)
          .map((e) => ({ addr: e.addr, timeoutS: e.expiresS ?? e.timeoutS ?? 1 }));
        if (!set.host || live.length === 0) continue;
        try {
          await applyDocument(addResolvedAddresses(input.table, net, { host: set.host }, live), this.nftOptions());
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
      if ((got.mode ?? null) !== (net.policy?.mode ?? null))
        problems.push(`network ${net.short}: mode ${got.mode ?? 'none'}, expected ${net.policy?.mode ?? 'none'}`);
      if (net.policy && (got.outbound.length !== net.policy.outbound.length || got.inbound.length !== net.policy.inbound.length)) {
        problems.push(
          `network ${net.short}: ${got.outbound.length}/${got.inbound.length} rules in force, policy has ${net.policy.outbound.length}/${net.policy.inbound.length}`,
        );
      }
    }
    const expected = new Set(input.networks.map((n) => n.short));
    for (const short of Object.keys(view.networks)) if (!expected.has(short)) problems.push(`chains for unknown network ${short}`);
    return problems;
  }

  /** After a whole-table build: every network at generation 0, nothing to retire. */
  private remember(networks: NetworkInput[]): void {
    this.nets.clear();
    this.cancelRetire();
    for (const n of networks)
      this.nets.set(n.short, { gen: 0, sets: networkNameSets(n).map((x) => x.name), retired: [], staleSets: new Set() });
  }

  /**
   * Creates or updates one network's chains (policy change, isolation) in one add-only
   * transaction that touches nothing else: cost does not grow with the number of networks, and
   * the change is in force when this resolves. The replaced generation is deleted later
   * ({@link RETIRE_DELAY_MS}, or {@link settle}).
   */
  async sync(record: NetworkRecord): Promise<void> {
    await this.serial(async () => {
      const net = toNetworkInput(record, this.deps.dnsPort);
      const input: NetfilterInput = { table: this.deps.table, networks: [net], alwaysDenied: this.deps.alwaysDenied };
      const before = this.nets.get(net.short);
      if (before && before.retired.length >= MAX_RETIRED) await this.retire([net.short]);
      const gen = before ? before.gen + 1 : 0;
      await applyDocument(compileNetwork(input, net, gen, before ? [...before.sets, ...before.staleSets] : []), this.nftOptions());
      const sets = networkNameSets(net).map((x) => x.name);
      const state: NetState = { gen, sets, retired: [], staleSets: new Set() };
      if (before) {
        state.retired = [...before.retired, before.gen];
        state.staleSets = new Set(unusedNameSets(net, [...before.staleSets, ...before.sets]));
      }
      this.nets.set(net.short, state);
      if (before) this.scheduleRetire();
    });
  }

  private cancelRetire(): void {
    if (this.retireTimer) clearTimeout(this.retireTimer);
    this.retireTimer = null;
  }

  /** (Re)starts the retire timer: it runs once changes have paused for the delay (MAX_RETIRED bounds what a long burst piles up). */
  private scheduleRetire(): void {
    this.cancelRetire();
    this.retireTimer = setTimeout(() => {
      this.retireTimer = null;
      void this.serial(() => this.retire()).catch((err: unknown) => this.log.error({ err }, 'could not retire replaced nft chains'));
    }, this.deps.retireDelayMs ?? RETIRE_DELAY_MS);
    this.retireTimer.unref();
  }

  /** Deletes replaced generations and unused name sets (of `shorts`, default all) in one transaction. Runs inside `serial`. */
  private async retire(shorts: Iterable<string> = this.nets.keys()): Promise<void> {
    const cmds: NftCommand[] = [];
    const done: NetState[] = [];
    for (const short of shorts) {
      const st = this.nets.get(short);
      if (!st || (st.retired.length === 0 && st.staleSets.size === 0)) continue;
      cmds.push(...compileRetire(this.deps.table, short, st.gen, { retired: st.retired, staleSets: [...st.staleSets] }).nftables);
      done.push(st);
    }
    if (cmds.length === 0) return;
    await applyDocument({ nftables: cmds }, this.nftOptions());
    for (const st of done) {
      st.retired = [];
      st.staleSets.clear();
    }
  }

  /** Retires replaced generations now (tests, benchmarks, before reading the raw ruleset). */
  async settle(): Promise<void> {
    this.cancelRetire();
    await this.serial(() => this.retire());
  }

  /** Removes every trace of a network from the table, replaced generations included. */
  async remove(record: NetworkRecord): Promise<void> {
    await this.serial(async () => {
      const net = toNetworkInput(record, this.deps.dnsPort);
      const st = this.nets.get(net.short);
      this.nets.delete(net.short);
      const objects = st ? { gens: [st.gen, ...st.retired], sets: [...st.sets, ...st.staleSets] } : undefined;
      await applyDocument(compileRemoveNetwork(this.deps.table, net, objects), this.nftOptions());
    });
  }

  /** Adds resolved addresses of an allowed host pattern to the network's name sets. */
  async allowResolved(record: NetworkRecord, host: string, addresses: ResolvedAddress[]): Promise<void> {
    const doc = addResolvedAddresses(this.deps.table, toNetworkInput(record, this.deps.dnsPort), { host }, addresses);
    await this.serial(() => applyDocument(doc, this.nftOptions()));
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
    if (this.tampered)
      throw new DirectorError('SERVICE_UNAVAILABLE', 'network enforcement was tampered with and is being restored; retry shortly');
  }

  get status(): { booted: boolean; tampered: boolean } {
    return { booted: this.booted, tampered: this.tampered };
  }

  /** Which of the table's base chains and network chains exist right now (one cheap `nft` call). */
  private async presentChains(): Promise<Map<string, string | null>> {
    const out = JSON.parse(await runNft(['-j', 'list', 'chains', 'inet'])) as {
      nftables?: { chain?: { table: string; name: string; hook?: string } }[];
    };
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
      for (const [short, st] of this.nets) {
        for (const name of CHAIN_KINDS.flatMap((k) => [chainName(short, k), genChainName(short, k, st.gen)]))
          if (!chains.has(name)) missing.push(name);
      }
      if (missing.length === 0) return true;
      this.tampered = true;
      this.log.error({ missing: missing.slice(0, 10) }, 'nft table tampered with: restoring');
      this.deps.events.emit({
        type: 'policy_tampered',
        severity: 'critical',
        details: { table: this.deps.table, missing: missing.slice(0, 50), missingCount: missing.length },
      });
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
