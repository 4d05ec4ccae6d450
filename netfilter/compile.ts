/**
 * The compiler: pure functions from {@link NetfilterInput} to libnftables JSON documents. Each
 * document is one atomic transaction (`nft -j -f -`) touching only Director's `inet` table.
 *
 * Layout: base chains on the forward and input hooks at priority -1 (ahead of Docker's
 * iptables-nft chains at 0) dispatch through verdict maps keyed on the bridge name
 * (`iifname vmap @egress_vmap`, `oifname vmap @ingress_vmap`, input: `iifname vmap @host_vmap`)
 * to per-network chains, so the cost per packet does not grow with the number of networks.
 */
import { collapseCidrs, formatIp, parseCidr, parseIp, type Cidr } from '../policies/address.ts';
import { remoteEnd, isHostEndpoint, type RuleDirection } from '../policies/network-policy.ts';
import { validationError } from '../runtime/errors.ts';
import { addrValue, jump, meta, setRef, tableOps, type NftCommand, type NftDocument, type TableOps } from './json.ts';
import { DEFAULT_LOG_RATE, checkInput, checkNetwork, type NetfilterInput, type NetworkInput } from './model.ts';
import { BASE_CHAINS, CHAIN_KINDS, GLOBAL_SETS, MAPS, chainName, counterName, parseObjectName } from './names.ts';
import { networkNameSets, networkRules } from './rules.ts';

const cidrs = (list: readonly string[]): Cidr[] => collapseCidrs(list.map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null));

const setDef = (name: string, family: 4 | 6, flags: string[]): Record<string, unknown> =>
  ({ name, type: family === 4 ? 'ipv4_addr' : 'ipv6_addr', flags });

/** The type of a per-network name set follows from its name (`..._v4` / `..._v6`). */
function nameSetDef(name: string): Record<string, unknown> {
  const parsed = parseObjectName(name);
  if (parsed?.kind !== 'set') throw validationError('previousSets', `"${name}" is not a network name set`);
  return setDef(name, parsed.family, ['timeout']);
}

function subnetElements(net: NetworkInput): { v4: unknown[]; v6: unknown[] } {
  const v4 = parseCidr(net.subnetV4);
  const v6 = net.subnetV6 === undefined ? null : parseCidr(net.subnetV6);
  return { v4: v4 ? [addrValue(v4)] : [], v6: v6 ? [addrValue(v6)] : [] };
}

/** Everything one network owns, created or refreshed (idempotent adds, chains flushed and refilled). */
function networkCommands(ops: TableOps, input: NetfilterInput, net: NetworkInput, previousSets: readonly string[]): NftCommand[] {
  const { rules, sets } = networkRules(net, input.logRate ?? DEFAULT_LOG_RATE);
  const cmds: NftCommand[] = [];
  // Named counters survive policy changes: metrics read them as monotonic totals.
  for (const kind of ['allowed', 'denied'] as const) cmds.push(ops.add('counter', { name: counterName(net.short, kind) }));
  for (const kind of CHAIN_KINDS) {
    cmds.push(ops.add('chain', { name: chainName(net.short, kind) }));
    cmds.push(ops.flush('chain', { name: chainName(net.short, kind) }));
  }
  // With the chains flushed nothing references the old sets: those no longer needed can go.
  const keep = new Set(sets.map((s) => s.name));
  for (const name of previousSets) {
    if (keep.has(name)) continue;
    cmds.push(ops.add('set', nameSetDef(name)), ops.del('set', { name }));
  }
  // `add` keeps an existing set and its resolved addresses.
  for (const s of sets) cmds.push(ops.add('set', setDef(s.name, s.family, ['timeout'])));
  for (const r of rules) cmds.push(ops.rule(chainName(net.short, r.chain), r.comment, r.expr));
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
  cmds.push(ops.add('set', setDef(GLOBAL_SETS.subnetsV4, 4, ['interval'])));
  cmds.push(ops.add('set', setDef(GLOBAL_SETS.subnetsV6, 6, ['interval'])));
  for (const [name, family, list] of [[GLOBAL_SETS.deniedV4, 4, input.alwaysDenied.v4], [GLOBAL_SETS.deniedV6, 6, input.alwaysDenied.v6]] as const) {
    cmds.push(ops.add('set', setDef(name, family, ['interval'])));
    const elem = cidrs(list).map(addrValue);
    if (elem.length) cmds.push(ops.add('element', ops.elements(name, elem)));
  }
  for (const net of input.networks) cmds.push(...networkCommands(ops, input, net, []));
  cmds.push(ops.rule(BASE_CHAINS.forward, 'egress', [{ vmap: { key: meta('iifname'), data: setRef(MAPS.out) } }]));
  cmds.push(ops.rule(BASE_CHAINS.forward, 'ingress', [{ vmap: { key: meta('oifname'), data: setRef(MAPS.in) } }]));
  cmds.push(ops.rule(BASE_CHAINS.input, 'host', [{ vmap: { key: meta('iifname'), data: setRef(MAPS.host) } }]));
  return { nftables: cmds };
}

/**
 * One network's transaction, for creation, policy changes and isolation: its chains are flushed
 * and refilled, its map elements and global set elements (re)added, name sets it no longer needs
 * deleted. Other networks' objects are not touched. The table must exist (see {@link compileTable}).
 *
 * @param previousSets names of the network's name sets now in the kernel (`readTable(...)`
 *   gives them), so sets the new policy no longer uses are deleted.
 */
export function compileNetwork(input: NetfilterInput, net: NetworkInput, previousSets: readonly string[] = []): NftDocument {
  checkInput({ ...input, networks: [net] });
  return { nftables: networkCommands(tableOps(input.table), input, net, previousSets) };
}

/**
 * Removes everything a network owns: map elements, chains, name sets, counters, its bridge and
 * subnets from the global sets. Idempotent: every delete is preceded by an add of the same object,
 * so the transaction also applies when (part of) the network is already gone.
 */
export function compileRemoveNetwork(table: string, net: NetworkInput, previousSets: readonly string[] = []): NftDocument {
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
  const sets = new Set([...previousSets, ...networkNameSets(net).map((s) => s.name)]);
  for (const name of sets) cmds.push(ops.add('set', nameSetDef(name)), ops.del('set', { name }));
  for (const kind of ['allowed', 'denied'] as const) {
    cmds.push(ops.add('counter', { name: counterName(net.short, kind) }), ops.del('counter', { name: counterName(net.short, kind) }));
  }
  const sub = subnetElements(net);
  const elements: [string, unknown[]][] = [[GLOBAL_SETS.bridges, [net.bridge]], [GLOBAL_SETS.subnetsV4, sub.v4], [GLOBAL_SETS.subnetsV6, sub.v6]];
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
export function addResolvedAddresses(table: string, net: NetworkInput, target: NameRuleTarget, addresses: readonly ResolvedAddress[]): NftDocument {
  let host: string;
  if ('host' in target) host = target.host;
  else {
    const rule = net.policy?.[target.direction][target.index];
    const remote = rule?.[remoteEnd(target.direction)];
    if (!isHostEndpoint(remote)) throw validationError('target', `${target.direction}[${target.index}] is not a host-name rule of network ${net.short}`);
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
      if (!Number.isFinite(a.timeoutS) || a.timeoutS <= 0) throw validationError(`addresses[${i}].timeoutS`, 'must be a positive number of seconds');
      return ip.family === set.family ? [{ elem: { val: formatIp(ip), timeout: Math.min(Math.ceil(a.timeoutS), 2 ** 31) } }] : [];
    });
    if (elem.length) cmds.push(ops.add('element', ops.elements(set.name, elem)));
  }
  return { nftables: cmds };
}

