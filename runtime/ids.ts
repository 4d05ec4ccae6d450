import { randomBytes } from 'node:crypto';

/** Prefixed, URL-safe, 96-bit random ids (`sbx_3kq...`). The prefix names the kind of resource. */
export type IdPrefix = 'sbx' | 'net' | 'req' | 'evt' | 'pol' | 'exe' | 'usr' | 'key' | 'wsp' | 'prf' | 'whk' | 'dlv' | 'aud';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`;
}

const ID_RE = /^[a-z]{3}_[A-Za-z0-9_-]{16}$/;
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_RE.test(value);
}
