import { randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto';
import { validationError } from '../../core/errors.ts';

/**
 * Password hashing with scrypt (memory-hard, in `node:crypto`, no native addon).
 * Encoded as `scrypt$N$r$p$saltB64$hashB64` so parameters can be raised later while old
 * hashes still verify. Parameters: N=2^15, r=8, p=1 (32 MiB per hash), 16-byte salt,
 * 32-byte key. The callback form of scrypt runs on the libuv pool, so the event loop stays free.
 */
const N = 2 ** 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;

/** Minimum and maximum password length, in Unicode code points. */
export const PASSWORD_MIN_CHARS = 12;
export const PASSWORD_MAX_CHARS = 1024;

/** scrypt needs 128·N·r bytes; Node's default `maxmem` (32 MiB) is exactly that, so double it. */
const maxmemFor = (n: number, r: number): number => 256 * n * r;

function derive(password: string, salt: Buffer, n: number, r: number, p: number, keyBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyBytes, { N: n, r, p, maxmem: maxmemFor(n, r) }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** Hashes a password into the encoded form. Does not check the policy. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, N, R, P, KEY_BYTES);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface Parsed {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/**
 * Parses an encoded hash, refusing parameters outside sane bounds: a tampered row must not
 * be able to make one verification allocate gigabytes.
 */
function parse(encoded: string): Parsed | null {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const salt = Buffer.from(parts[4]!, 'base64');
  const hash = Buffer.from(parts[5]!, 'base64');
  const powerOfTwo = Number.isInteger(n) && n >= 2 ** 14 && n <= 2 ** 20 && (n & (n - 1)) === 0;
  if (!powerOfTwo || !Number.isInteger(r) || r < 1 || r > 16 || !Number.isInteger(p) || p < 1 || p > 4) return null;
  if (salt.length < 16 || hash.length < 16 || hash.length > 64) return null;
  return { n, r, p, salt, hash };
}

/** Checks a password against an encoded hash in constant time. Malformed hashes never match. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parse(encoded);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.n, parsed.r, parsed.p, parsed.hash.length);
  return timingSafeEqual(key, parsed.hash);
}

/**
 * A hash of a password nobody knows, with the current parameters. Logins for unknown users
 * verify against it so they take as long as logins with a wrong password.
 */
export const DUMMY_PASSWORD_HASH = 'scrypt$32768$8$1$GGgIDp+ebMvwgPl8g4MsTw==$x320zlBNHb/coS4dXJRNPjpJ5CvBX+ybkjY7vAkqBUY=';

/** Throws VALIDATION_ERROR on `field` unless the password meets the policy (12–1024 code points). */
export function checkPasswordPolicy(password: unknown, field = 'password'): asserts password is string {
  if (typeof password !== 'string') throw validationError(field, 'must be a string');
  const chars = [...password].length;
  if (chars < PASSWORD_MIN_CHARS) throw validationError(field, `must be at least ${PASSWORD_MIN_CHARS} characters`);
  if (chars > PASSWORD_MAX_CHARS) throw validationError(field, `must be at most ${PASSWORD_MAX_CHARS} characters`);
}

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** A random password of `length` characters from a 57-symbol alphabet (24 chars ≈ 140 bits). */
export function generatePassword(length = 24): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
