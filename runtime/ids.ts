import { randomBytes } from 'node:crypto';

/** Prefixed, URL-safe, 96-bit random ids (`sbx_3kq...`). The prefix names the kind of resource. */
export type IdPrefix = 'sbx' | 'net' | 'req' | 'evt' | 'pol' | 'exe' | 'usr' | 'key' | 'wsp' | 'prf' | 'whk' | 'dlv' | 'aud';

/** CSPRNG bytes drawn 4 KiB at a time: one draw per 341 ids instead of one per id (hot for events). */
let pool = Buffer.alloc(0);
let at = 0;

export function newId(prefix: IdPrefix): string {
  if (at + 12 > pool.length) {
    pool = randomBytes(4092);
    at = 0;
  }
  const id = pool.toString('base64url', at, at + 12);
  at += 12;
  return `${prefix}_${id}`;
}

const ID_RE = /^[a-z]{3}_[A-Za-z0-9_-]{16}$/;
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_RE.test(value);
}
