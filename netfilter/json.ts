/**
 * The slice of libnftables JSON (libnftables-json(5), nft 1.0.6) the compiler emits, with small
 * builders so rules read close to nft syntax.
 */
import { formatIp, type Cidr } from '../policies/address.ts';

export type NftExpr = Record<string, unknown>;

/** One command of a document: `{ add: { rule: {...} } }`, `{ delete: { set: {...} } }`, ... */
export type NftCommand = Partial<Record<'add' | 'insert' | 'delete' | 'flush', Record<string, Record<string, unknown>>>>;

/** A document nft applies as one transaction (as JSON, or rendered in nft's syntax by `text.ts`). */
export interface NftDocument {
  nftables: NftCommand[];
}

export const FAMILY = 'inet';

export const match = (left: NftExpr, right: unknown, op: '==' | '!=' | 'in' = '=='): NftExpr => ({ match: { op, left, right } });
export const payload = (protocol: string, field: string): NftExpr => ({ payload: { protocol, field } });
export const meta = (key: string): NftExpr => ({ meta: { key } });
export const ct = (key: string): NftExpr => ({ ct: { key } });
export const setRef = (name: string): string => `@${name}`;

/** A CIDR as nft's right-hand side: a bare address for a full-length prefix, else `prefix`. */
export function addrValue(c: Cidr): unknown {
  const full = c.family === 4 ? 32 : 128;
  return c.len === full ? formatIp(c) : { prefix: { addr: formatIp(c), len: c.len } };
}

export const addrField = (family: 4 | 6, field: 'saddr' | 'daddr'): NftExpr => payload(family === 4 ? 'ip' : 'ip6', field);

export const accept = (): NftExpr => ({ accept: null });
export const drop = (): NftExpr => ({ drop: null });
export const ret = (): NftExpr => ({ return: null });
export const jump = (target: string): NftExpr => ({ jump: { target } });
/** Continues in `target` without a return address: its `return` (or its end) goes back to the caller's caller. */
export const goto = (target: string): NftExpr => ({ goto: { target } });
/** An anonymous per-rule counter. */
export const counter = (): NftExpr => ({ counter: null });
/** A reference to a named counter object. */
export const namedCounter = (name: string): NftExpr => ({ counter: name });
export const limit = (perSecond: number, burst: number): NftExpr => ({ limit: { rate: perSecond, per: 'second', burst } });
export const log = (prefix: string): NftExpr => ({ log: { prefix } });

/** Builds commands for one table; every command the compiler emits goes through here. */
export function tableOps(table: string) {
  const base = { family: FAMILY, table };
  return {
    addTable: (): NftCommand => ({ add: { table: { family: FAMILY, name: table } } }),
    deleteTable: (): NftCommand => ({ delete: { table: { family: FAMILY, name: table } } }),
    add: (kind: string, body: Record<string, unknown>): NftCommand => ({ add: { [kind]: { ...base, ...body } } }),
    del: (kind: string, body: Record<string, unknown>): NftCommand => ({ delete: { [kind]: { ...base, ...body } } }),
    flush: (kind: string, body: Record<string, unknown>): NftCommand => ({ flush: { [kind]: { ...base, ...body } } }),
    rule: (chain: string, comment: string, expr: NftExpr[]): NftCommand => ({ add: { rule: { ...base, chain, comment, expr } } }),
    /** A rule placed first in its chain. */
    insertRule: (chain: string, comment: string, expr: NftExpr[]): NftCommand => ({ insert: { rule: { ...base, chain, comment, expr } } }),
    elements: (set: string, elem: unknown[]): Record<string, unknown> => ({ name: set, elem }),
  };
}
export type TableOps = ReturnType<typeof tableOps>;

/**
 * Readers for walking a document by its shapes, throwing `Refusal` (the caller's "cannot carry
 * this" error) at anything else: `obj` for a plain object, `only` for the single key of
 * `{ kind: body }`. The text renderer and the netlink encoder share them.
 */
export function shapeReaders(Refusal: new (message: string) => Error) {
  const obj = (v: unknown): Record<string, unknown> => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Refusal(`not an object: ${JSON.stringify(v)}`);
    return v as Record<string, unknown>;
  };
  const only = (o: Record<string, unknown>): [string, unknown] => {
    const keys = Object.keys(o);
    if (keys.length !== 1) throw new Refusal(`expected one key, got ${keys.join(',')}`);
    return [keys[0]!, o[keys[0]!]];
  };
  return { obj, only };
}
