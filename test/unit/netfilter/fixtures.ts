/**
 * Shared by the netfilter unit and integration tests: two fake networks, a policy with every
 * kind of rule, and a small in-memory model of nft that applies a compiled document and lists
 * the result in `nft -j list table` form, so the compiler's transactions and the read-back can be
 * tested without root.
 */
import { validateNetworkPolicy, type NetworkPolicy } from '../../../policies/network-policy.ts';
import { evaluationOrder } from '../../../policies/rule-order.ts';
import type { RuleView } from '../../../netfilter/readback.ts';
import type { NftCommand, NftDocument, NftExpr } from '../../../netfilter/json.ts';
import { DEFAULT_ALWAYS_DENIED, type NetfilterInput, type NetworkInput } from '../../../netfilter/model.ts';

export const fullPolicy = (overrides: Partial<Record<string, unknown>> = {}): NetworkPolicy =>
  validateNetworkPolicy({
    name: 'full',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: '*.pythonhosted.org', port: 443 },
      { action: 'deny', protocol: 'all', destination: '10.0.0.0/8' },
      { action: 'allow', protocol: 'udp', destination: '2001:db8::/32', port: { from: 8000, to: 8100 } },
      { action: 'allow', protocol: 'icmp' },
      { action: 'deny', protocol: 'tcp', destination: '203.0.113.9', port: 22 },
      { action: 'allow', protocol: 'tcp', destination: 'pypi.org', port: 443 },
    ],
    inbound: [
      { action: 'allow', protocol: 'tcp', source: '198.51.100.0/24', port: 22 },
      { action: 'deny', protocol: 'all', source: '198.51.100.66' },
    ],
    ...overrides,
  });

export function network(short: string, n: number, policy: NetworkPolicy | null, extra: Partial<NetworkInput> = {}): NetworkInput {
  return {
    id: `net_${short}`,
    short,
    bridge: `dt-${short}`,
    subnetV4: `10.250.${n}.0/24`,
    subnetV6: `fd00:dead:${n}::/64`,
    gatewayV4: `10.250.${n}.1`,
    isolated: false,
    policy,
    dns: { address: `10.250.${n}.1`, port: 53 },
    ...extra,
  };
}

export function twoNetworks(table: string, a: Partial<NetworkInput> = {}, b: Partial<NetworkInput> = {}): NetfilterInput {
  return {
    table,
    alwaysDenied: DEFAULT_ALWAYS_DENIED,
    networks: [network('aaaa1111', 1, fullPolicy(), a), network('bbbb2222', 2, null, b)],
  };
}

/** What the read-back should say about a policy's rules: in the order they are evaluated (as written; a kept deny-first policy's denies first). */
export function expectedRules(policy: NetworkPolicy, direction: 'outbound' | 'inbound'): Record<string, unknown>[] {
  return evaluationOrder(policy[direction], policy.order).map(({ rule: r, index }) => {
    const out: Record<string, unknown> = { index, action: r.action, protocol: r.protocol };
    for (const k of ['source', 'destination', 'port'] as const) if (r[k] !== undefined) out[k] = r[k];
    return out;
  });
}

/** The fields of read-back rules that {@link expectedRules} predicts. */
export const essentials = (views: RuleView[]): Record<string, unknown>[] =>
  views.map((v) => {
    const out: Record<string, unknown> = { index: v.index, action: v.action, protocol: v.protocol };
    for (const k of ['source', 'destination', 'port'] as const) if (v[k] !== undefined) out[k] = v[k];
    return out;
  });

export interface SimRule {
  chain: string;
  comment: string;
  expr: NftExpr[];
}

/** Rules of one chain, in order, from a document. */
export const rulesOf = (doc: NftDocument, chain: string): SimRule[] =>
  doc.nftables.flatMap((c) => (c.add?.rule && c.add.rule.chain === chain ? [c.add.rule as unknown as SimRule] : []));

export const verdictOf = (expr: NftExpr[]): string | null =>
  expr.map((e) => ['accept', 'drop', 'return', 'jump'].find((v) => v in e)).find((v) => v !== undefined) ?? null;

/** Every object a command names, as `<kind>:<name>` (rules as `rule:<chain>`). */
export function commandTargets(doc: NftDocument): { op: string; kind: string; body: Record<string, unknown> }[] {
  return doc.nftables.flatMap((c) =>
    Object.entries(c).flatMap(([op, objs]) => Object.entries(objs ?? {}).map(([kind, body]) => ({ op, kind, body }))),
  );
}

type Obj = Record<string, unknown>;

/** A tiny model of one nft table: enough of the semantics to replay the compiler's documents. */
export class NftSim {
  table: Obj | null = null;
  chains = new Map<string, Obj>();
  rules = new Map<string, Obj[]>();
  sets = new Map<string, Obj & { elem: unknown[] }>();
  maps = new Map<string, Obj & { elem: unknown[] }>();
  counters = new Map<string, Obj>();
  private handle = 1;

  apply(doc: NftDocument): void {
    for (const cmd of doc.nftables) this.one(cmd);
  }

  private fail(msg: string): never {
    throw new Error(`sim: ${msg}`);
  }

  private one(cmd: NftCommand): void {
    const op = Object.keys(cmd)[0] as 'add' | 'insert' | 'delete' | 'flush';
    const objs = cmd[op] ?? {};
    const kind = Object.keys(objs)[0] ?? '';
    const body: Obj = objs[kind] ?? {};
    const name = String(body.name);
    if (kind === 'table') {
      if (op === 'add') this.table ??= { family: body.family, name };
      else if (op === 'delete') {
        if (!this.table) this.fail('no table');
        Object.assign(this, { table: null, chains: new Map(), rules: new Map(), sets: new Map(), maps: new Map(), counters: new Map() });
      }
      return;
    }
    if (!this.table) this.fail(`${op} ${kind} without table`);
    const store = new Map<string, Map<string, Obj>>([
      ['chain', this.chains],
      ['set', this.sets],
      ['map', this.maps],
      ['counter', this.counters],
    ]).get(kind);
    if (kind === 'rule') {
      const chain = String(body.chain);
      if (!this.chains.has(chain)) this.fail(`rule in missing chain ${chain}`);
      for (const ref of JSON.stringify(body.expr).match(/"@([^"]+)"/g) ?? []) {
        const n = ref.slice(2, -1);
        if (!this.sets.has(n) && !this.maps.has(n)) this.fail(`rule references missing ${n}`);
      }
      for (const t of JSON.stringify(body.expr).match(/"target":"([^"]+)"/g) ?? []) {
        if (!this.chains.has(t.slice(10, -1))) this.fail(`rule goes to missing chain ${t.slice(10, -1)}`);
      }
      const rule = { ...body, handle: this.handle++ };
      if (op === 'insert') this.rules.get(chain)!.unshift(rule);
      else if (op === 'add') this.rules.get(chain)!.push(rule);
      else this.fail(`${op} rule is not modelled`);
      return;
    }
    if (kind === 'element') {
      const target = this.sets.get(name) ?? this.maps.get(name) ?? this.fail(`element of missing ${name}`);
      const key = (e: unknown) => JSON.stringify(Array.isArray(e) ? e[0] : e);
      for (const e of body.elem as unknown[]) {
        const i = target.elem.findIndex((x) => key(x) === key(e));
        if (op === 'add') {
          if (Array.isArray(e)) {
            const jumpTo = (e[1] as { jump?: { target?: string } }).jump?.target;
            if (jumpTo && !this.chains.has(jumpTo)) this.fail(`map element jumps to missing chain ${jumpTo}`);
          }
          if (i < 0) target.elem.push(e);
        } else if (op === 'delete') {
          if (i < 0) this.fail(`delete of missing element ${key(e)} in ${name}`);
          target.elem.splice(i, 1);
        }
      }
      return;
    }
    if (!store) this.fail(`unknown kind ${kind}`);
    if (op === 'add') {
      if (!store.has(name)) {
        store.set(name, kind === 'set' || kind === 'map' ? { ...body, elem: [...((body.elem as unknown[]) ?? [])] } : { ...body });
        if (kind === 'chain') this.rules.set(name, []);
      }
    } else if (op === 'flush') {
      if (!store.has(name)) this.fail(`flush of missing ${kind} ${name}`);
      if (kind === 'chain') this.rules.set(name, []);
    } else if (op === 'delete') {
      if (!store.has(name)) this.fail(`delete of missing ${kind} ${name}`);
      const text = JSON.stringify([...this.rules.values()]) + JSON.stringify([...this.maps.values()]);
      if (kind === 'set' && text.includes(`"@${name}"`)) this.fail(`delete of set ${name} still in use`);
      if (kind === 'chain' && (this.rules.get(name)!.length > 0 || text.includes(`"target":"${name}"`)))
        this.fail(`delete of chain ${name} still in use`);
      if (kind === 'counter' && text.includes(`"counter":"${name}"`)) this.fail(`delete of counter ${name} still in use`);
      store.delete(name);
      if (kind === 'chain') this.rules.delete(name);
    }
  }

  /** The table in `nft -j list table inet <name>` form (anonymous counters read zero). */
  list(): unknown {
    if (!this.table) throw new Error('sim: no table');
    const t = String(this.table.name);
    const items: Obj[] = [{ metainfo: { version: 'sim' } }, { table: this.table }];
    for (const c of this.counters.values()) items.push({ counter: { ...c, packets: 0, bytes: 0 } });
    for (const m of this.maps.values()) items.push({ map: m.elem.length ? m : { ...m, elem: undefined } });
    for (const s of this.sets.values()) items.push({ set: s.elem.length ? s : { ...s, elem: undefined } });
    for (const c of this.chains.values()) items.push({ chain: c });
    for (const [chain, rules] of this.rules) {
      for (const r of rules) {
        const expr = (r.expr as NftExpr[]).map((e) => (e.counter === null ? { counter: { packets: 0, bytes: 0 } } : e));
        items.push({ rule: { family: 'inet', table: t, chain, ...r, expr } });
      }
    }
    return JSON.parse(JSON.stringify({ nftables: items })) as unknown;
  }
}
