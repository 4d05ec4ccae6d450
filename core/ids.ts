import { randomBytes } from 'node:crypto';

/** Prefixed, URL-safe, 96-bit random ids (`sbx_3kq...`). The prefix names the kind of resource. */
export type IdPrefix =
  | 'sbx'
  | 'net'
  | 'req'
  | 'evt'
  | 'pol'
  | 'exe'
  | 'usr'
  | 'key'
  | 'wsp'
  | 'prf'
  | 'whk'
  | 'dlv'
  | 'aud'
  | 'ses'
  | 'dep'
  | 'env'
  | 'ctx'
  | 'itm'
  | 'ckp'
  | 'wf'
  | 'run'
  | 'agt'
  | 'msg'
  | 'apr'
  | 'aar'
  | 'vlt'
  | 'prv'
  | 'trn';

/**
 * CSPRNG bytes drawn 4 KiB at a time and encoded at once: one draw and one encoding per 341
 * ids instead of one per id (hot for events and request ids). 12 bytes encode to exactly 16
 * base64url characters, so the encoded pool cuts into ids on 16-character boundaries.
 */
const ID_BYTES = 12;
const ID_CHARS = 16;
const POOL_IDS = 341;
let pool = '';
let at = 0;

export function newId(prefix: IdPrefix): string {
  if (at >= pool.length) {
    pool = randomBytes(ID_BYTES * POOL_IDS).toString('base64url');
    at = 0;
  }
  const id = pool.slice(at, at + ID_CHARS);
  at += ID_CHARS;
  return `${prefix}_${id}`;
}

const ID_RE = /^[a-z]{2,4}_[A-Za-z0-9_-]{16}$/;
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_RE.test(value);
}
