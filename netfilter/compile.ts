/**
 * The compiler: pure functions from {@link NetfilterInput} to libnftables JSON documents. Each
 * document is one atomic transaction (`applyDocument` in `nft.ts`) touching only Director's
 * `inet` table.
 *
 * Layout: base chains on the forward and input hooks at priority -1 (ahead of Docker's
 * iptables-nft chains at 0) dispatch through verdict maps keyed on the bridge name
 * (`iifname vmap @egress_vmap`, `oifname vmap @ingress_vmap`, input: `iifname vmap @host_vmap`)
 * to per-network chains, so the cost per packet does not grow with the number of networks.
 *
 * Each per-network entry chain holds one `goto` to the chain of the policy generation in force.
 * A change builds the next generation beside it and inserts a `goto` to it ahead of the old one:
 * an add-only transaction, effective as soon as it commits. Deleting the old generation (and any
 * name set it alone used) is a second transaction the caller runs later, off the critical path.
 */
import { collapseCidrs, formatIp, parseCidr, parseIp, type Cidr } from '../policies/address.ts';
import { remoteEnd, isHostEndpoint, type RuleDirection } from '../policies/network-policy.ts';
import { validationError } from '../core/errors.ts';
import { addrValue, goto, jump, meta, setRef, tableOps, type NftCommand, type NftDocument, type TableOps } from './json.ts';
import { DEFAULT_LOG_RATE, checkInput, checkNetwork, type NetfilterInput, type NetworkInput } from './model.ts';
import {
  BASE_CHAINS,
  CHAIN_KINDS,
  CONST_SETS,
  GLOBAL_SETS,
  MAPS,
  SHORT_RE,
  chainName,
  counterName,
  genChainName,
  parseObjectName,
} from './names.ts';
import { networkNameSets, networkRules } from './rules.ts';

const cidrs = (list: readonly string[]): Cidr[] => collapseCidrs(list.map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null));

const setDef = (name: string, family: 4 | 6, flags: string[]): Record<string, unknown> => ({
  name,
  type: family === 4 ? 'ipv4_addr' : 'ipv6_addr',
  flags,
});

/** The type of a per-network name set follows from its name (`..._v4` / `..._v6`). */
function nameSetDef(name: string): Record<string, unknown> {
  const parsed = parseObjectName(name);
  if (parsed?.kind !== 'set') throw validationError('sets', `"${name}" is not a network name set`);
  return setDef(name, parsed.family, ['timeout']);
}

function subnetElements(net: NetworkInput): { v4: unknown[]; v6: unknown[] } {
  const v4 = parseCidr(net.subnetV4);
  const v6 = net.subnetV6 === undefined ? null : parseCidr(net.subnetV6);
  return { v4: v4 ? [addrValue(v4)] : [], v6: v6 ? [addrValue(v6)] : [] };
}

/** Comment of the one rule in an entry chain (`goto` the generation in force). */
const ENTRY_TAG = 'entry';

/**
 * One network's objects with its rules in generation `gen` of its chains. Generation 0 creates
 * the network: counters, entry chains, verdict map and global set elements. A later generation
 * assumes those exist and adds only its chains, their rules, any name set not there yet (an
 * existing set is kept, with its resolved addresses) and a `goto` inserted first in each entry
 * chain. Nothing is deleted and nothing existing is re-added: a deletion costs the kernel a grace
 * period and re-adding an existing chain is an update it commits as slowly (10-20 ms each here),
 * so retiring the previous generation is a separate, later transaction ({@link compileRetire}).
 * Until then the old `goto` sits behind the new one and is never reached: `goto` does not return.
 */
function networkCommands(
  ops: TableOps,
  input: NetfilterInput,
  net: NetworkInput,
  gen: number,
  presentSets: readonly string[],
): NftCommand[] {
  const { rules, sets } = networkRules(net, input.logRate ?? DEFAULT_LOG_RATE);
  const cmds: NftCommand[] = [];
  const create = gen === 0;
  if (create) {
    // Named counters survive policy changes: metrics read them as monotonic totals.
    for (const kind of ['allowed', 'denied'] as const) cmds.push(ops.add('counter', { name: counterName(net.short, kind) }));
    for (const kind of CHAIN_KINDS) cmds.push(ops.add('chain', { name: chainName(net.short, kind) }));
  }
  // A generation number is used once; the flush (of an empty chain: no deletion) makes the document idempotent.
  for (const kind of CHAIN_KINDS) {
    cmds.push(
      ops.add('chain', { name: genChainName(net.short, kind, gen) }),
      ops.flush('chain', { name: genChainName(net.short, kind, gen) }),
    );
  }
  for (const s of sets) if (!presentSets.includes(s.name)) cmds.push(ops.add('set', setDef(s.name, s.family, ['timeout'])));
  for (const r of rules) cmds.push(ops.rule(genChainName(net.short, r.chain, gen), r.comment, r.expr));
  for (const kind of CHAIN_KINDS)
    cmds.push(ops.insertRule(chainName(net.short, kind), ENTRY_TAG, [goto(genChainName(net.short, kind, gen))]));
  if (!create) return cmds;
  for (const kind of CHAIN_KINDS) {
    cmds.push(ops.add('element', ops.elements(MAPS[kind], [[net.bridge, jump(chainName(net.short, kind))]])));
  }
  cmds.push(ops.add('element', ops.elements(GLOBAL_SETS.bridges, [net.bridge])));
  const sub = subnetElements(net);
  if (sub.v4.length) cmds.push(ops.add('element', ops.elements(GLOBAL_SETS.subnetsV4, sub.v4)));
  if (sub.v6.length) cmds.push(ops.add('element', ops.elements(GLOBAL_SETS.subnetsV6, sub.v6)));
  return cmds;
}

/**
 * The whole table, replacing any previous one atomically (boot, or recovery after drift).
 * Resolved addresses in name sets and counter values start from empty.
 */
export function compileTable(input: NetfilterInput): NftDocument {
  checkInput(input);
  const ops = tableOps(input.table);
  const cmds: NftCommand[] = [ops.addTable(), ops.deleteTable(), ops.addTable()];
  cmds.push(ops.add('chain', { name: BASE_CHAINS.forward, type: 'filter', hook: 'forward', prio: -1, policy: 'accept' }));
  cmds.push(ops.add('chain', { name: BASE_CHAINS.input, type: 'filter', hook: 'input', prio: -1, policy: 'accept' }));
  for (const kind of CHAIN_KINDS) cmds.push(ops.add('map', { name: MAPS[kind], type: 'ifname', map: 'verdict' }));
  cmds.push(ops.add('set', { name: GLOBAL_SETS.bridges, type: 'ifname' }));
  for (const c of Object.values(CONST_SETS)) cmds.push(ops.add('set', { name: c.name, type: c.type, elem: [...c.elem] }));
  cmds.push(ops.add('set', setDef(GLOBAL_SETS.subnetsV4, 4, ['interval'])));
  cmds.push(ops.add('set', setDef(GLOBAL_SETS.subnetsV6, 6, ['interval'])));
  for (const [name, family, list] of [
    [GLOBAL_SETS.deniedV4, 4, input.alwaysDenied.v4],
    [GLOBAL_SETS.deniedV6, 6, input.alwaysDenied.v6],
  ] as const) {
    cmds.push(ops.add('set', setDef(name, family, ['interval'])));
    const elem = cidrs(list).map(addrValue);
    if (elem.length) cmds.push(ops.add('element', ops.elements(name, elem)));
  }
  for (const net of input.networks) cmds.push(...networkCommands(ops, input, net, 0, []));
  cmds.push(ops.rule(BASE_CHAINS.forward, 'egress', [{ vmap: { key: meta('iifname'), data: setRef(MAPS.out) } }]));
  cmds.push(ops.rule(BASE_CHAINS.forward, 'ingress', [{ vmap: { key: meta('oifname'), data: setRef(MAPS.in) } }]));
  cmds.push(ops.rule(BASE_CHAINS.input, 'host', [{ vmap: { key: meta('iifname'), data: setRef(MAPS.host) } }]));
  return { nftables: cmds };
}

/**
 * One network's transaction, for creation (`gen` 0), policy changes and isolation (the next
 * generation): generation `gen` of its chains is built and put in force; the one before it stays
 * (unused) until {@link compileRetire}. Nothing is deleted and other networks' objects are not
 * touched. The table must exist (see {@link compileTable}); for `gen` > 0 so must the network.
 *
 * @param presentSets the network's name sets in the kernel now: not added again (an existing set
 *   would be kept anyway, but each add costs the kernel a scan of the table's sets).
 */
export function compileNetwork(input: NetfilterInput, net: NetworkInput, gen: number, presentSets: readonly string[] = []): NftDocument {
  checkInput({ ...input, networks: [net] });
  checkGen(gen, 'gen');
  return { nftables: networkCommands(tableOps(input.table), input, net, gen, gen === 0 ? [] : presentSets) };
}

/** What of a network is in the kernel besides what its record says. */
export interface NetworkLeftovers {
  /** Generations that are no longer in force. */
  retired: readonly number[];
  /** Name sets the policy in force no longer uses. */
  staleSets: readonly string[];
}

/**
 * Retires what {@link compileNetwork} left behind: each entry chain is reduced to its one `goto`
 * to generation `gen` (in the same transaction, so no packet sees it empty), then the retired
 * generations' chains and the name sets no longer used are deleted.
 */
export function compileRetire(table: string, short: string, gen: number, leftovers: NetworkLeftovers): NftDocument {
  if (!SHORT_RE.test(short)) throw validationError('short', 'must be 1-12 characters of [a-z0-9]');
  checkGen(gen, 'gen');
  const ops = tableOps(table);
  const cmds: NftCommand[] = [];
  for (const kind of CHAIN_KINDS) {
    cmds.push(ops.flush('chain', { name: chainName(short, kind) }));
    cmds.push(ops.rule(chainName(short, kind), ENTRY_TAG, [goto(genChainName(short, kind, gen))]));
  }
  for (const g of leftovers.retired) {
    checkGen(g, 'retired');
    if (g === gen) throw validationError('retired', `generation ${gen} is the one put in force`);
    cmds.push(...dropChains(ops, short, g));
  }
  for (const name of leftovers.staleSets) {
    if (parseObjectName(name)?.short !== short) throw validationError('staleSets', `"${name}" is not a name set of network ${short}`);
    cmds.push(ops.add('set', nameSetDef(name)), ops.del('set', { name }));
  }
  return { nftables: cmds };
}

function checkGen(gen: number, field: string): void {
  if (!Number.isInteger(gen) || gen < 0 || gen > 999_999_999) throw validationError(field, 'must be an integer from 0 to 999999999');
}

/** Idempotent deletion of one generation's chains (each is added first, so a missing one is no error). */
function dropChains(ops: TableOps, short: string, gen: number): NftCommand[] {
  return CHAIN_KINDS.flatMap((kind) => {
    const name = genChainName(short, kind, gen);
    return [ops.add('chain', { name }), ops.flush('chain', { name }), ops.del('chain', { name })];
  });
}

/** Everything of a network in the kernel, for {@link compileRemoveNetwork}. */
export interface NetworkObjects {
  /** Every generation with chains in the kernel (in force and retired). */
  gens: readonly number[];
  /** Every name set in the kernel (used or stale); the current policy's are always included. */
  sets: readonly string[];
}

/**
 * Removes everything a network owns: map elements, entry and generation chains, name sets,
 * counters, its bridge and subnets from the global sets. Idempotent: every delete is preceded by
 * an add of the same object, so the transaction also applies when (part of) the network is
 * already gone.
 */
export function compileRemoveNetwork(table: string, net: NetworkInput, objects: NetworkObjects = { gens: [0], sets: [] }): NftDocument {
  checkNetwork(net);
  const ops = tableOps(table);
  const cmds: NftCommand[] = [];
  for (const kind of CHAIN_KINDS) cmds.push(ops.add('chain', { name: chainName(net.short, kind) }));
  for (const kind of CHAIN_KINDS) {
    const elem = ops.elements(MAPS[kind], [[net.bridge, jump(chainName(net.short, kind))]]);
    cmds.push(ops.add('element', elem), ops.del('element', ops.elements(MAPS[kind], [net.bridge])));
  }
  for (const kind of CHAIN_KINDS) {
    cmds.push(ops.flush('chain', { name: chainName(net.short, kind) }), ops.del('chain', { name: chainName(net.short, kind) }));
  }
  for (const g of new Set(objects.gens)) {
    checkGen(g, 'gens');
    cmds.push(...dropChains(ops, net.short, g));
  }
  const sets = new Set([...objects.sets, ...networkNameSets(net).map((s) => s.name)]);
  for (const name of sets) cmds.push(ops.add('set', nameSetDef(name)), ops.del('set', { name }));
  for (const kind of ['allowed', 'denied'] as const) {
    cmds.push(ops.add('counter', { name: counterName(net.short, kind) }), ops.del('counter', { name: counterName(net.short, kind) }));
  }
  const sub = subnetElements(net);
  const elements: [string, unknown[]][] = [
    [GLOBAL_SETS.bridges, [net.bridge]],
    [GLOBAL_SETS.subnetsV4, sub.v4],
    [GLOBAL_SETS.subnetsV6, sub.v6],
  ];
  for (const [set, elem] of elements) {
    if (elem.length) cmds.push(ops.add('element', ops.elements(set, elem)), ops.del('element', ops.elements(set, elem)));
  }
  return { nftables: cmds };
}

/** Deletes Director's table (idempotent). */
export function compileDeleteTable(table: string): NftDocument {
  const ops = tableOps(table);
  return { nftables: [ops.addTable(), ops.deleteTable()] };
}

export interface ResolvedAddress {
  addr: string;
  /** How long the address stays allowed, in seconds (rounded up, at least 1). */
  timeoutS: number;
}

/** A name rule by position (`{ direction: 'outbound', index: 2 }`) or by its host pattern. */
export type NameRuleTarget = { direction: RuleDirection; index: number } | { host: string };

/**
 * The command adding a resolver's answer to the name set(s) of a rule, with timeouts. Re-adding
 * an address refreshes its timeout. Addresses of a family the rule does not cover are skipped;
 * an empty document means nothing to do.
 */
export function addResolvedAddresses(
  table: string,
  net: NetworkInput,
  target: NameRuleTarget,
  addresses: readonly ResolvedAddress[],
): NftDocument {
  let host: string;
  if ('host' in target) host = target.host;
  else {
    const rule = net.policy?.[target.direction][target.index];
    const remote = rule?.[remoteEnd(target.direction)];
    if (!isHostEndpoint(remote))
      throw validationError('target', `${target.direction}[${target.index}] is not a host-name rule of network ${net.short}`);
    host = remote;
  }
  const sets = networkNameSets(net).filter((s) => s.host === host);
  if (sets.length === 0) throw validationError('target', `network ${net.short} has no rule for host "${host}"`);
  const ops = tableOps(table);
  const cmds: NftCommand[] = [];
  for (const set of sets) {
    const elem = addresses.flatMap((a, i) => {
      const ip = parseIp(a.addr);
      if (!ip) throw validationError(`addresses[${i}].addr`, `"${a.addr}" is not an IP address`);
      if (!Number.isFinite(a.timeoutS) || a.timeoutS <= 0)
        throw validationError(`addresses[${i}].timeoutS`, 'must be a positive number of seconds');
      return ip.family === set.family ? [{ elem: { val: formatIp(ip), timeout: Math.min(Math.ceil(a.timeoutS), 2 ** 31) } }] : [];
    });
    if (elem.length) cmds.push(ops.add('element', ops.elements(set.name, elem)));
  }
  return { nftables: cmds };
}
