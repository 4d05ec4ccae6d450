/**
 * A pure heuristic that flags query names that look like DNS tunnelling (data encoded into
 * labels: iodine, dnscat2, exfiltration by `<hex>.attacker.example`). It only labels refused
 * queries in security events; it never decides whether a name is answered, so a false positive
 * costs a misleading flag, not an outage.
 */

/** A label longer than this is flagged outright (legitimate labels are rarely this long). */
export const MAX_PLAIN_LABEL_CHARS = 40;
/** A name longer than this (without the trailing dot) is flagged outright. */
export const MAX_PLAIN_NAME_CHARS = 120;
/** Labels at least this long are examined for encoded-looking content. */
export const EXAMINED_LABEL_CHARS = 20;
/** Shannon entropy (bits per character) from which a label counts as high-entropy. */
export const HIGH_ENTROPY_BITS = 3.5;

/** Shannon entropy of the characters of `text`, in bits per character (0 for ''). */
export function entropyBitsPerChar(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

const count = (text: string, re: RegExp): number => text.match(re)?.length ?? 0;

/** Mostly hex digits, with enough digits that it is not an English word made of a-f. */
function looksHex(label: string): boolean {
  return count(label, /[0-9a-f]/g) / label.length >= 0.9 && count(label, /[0-9]/g) / label.length >= 0.2;
}

/**
 * Not made of words: many digits (base32/base36/base64 output is 15-30% digits) or few vowels
 * among the letters (English runs ~38%, uniformly random letters ~19%).
 */
function looksNonWord(label: string): boolean {
  const letters = count(label, /[a-z]/g);
  const digits = count(label, /[0-9]/g);
  const vowels = count(label, /[aeiou]/g);
  return digits / label.length >= 0.15 || (letters > 0 && vowels / letters < 0.25);
}

/**
 * Whether `name` looks like a DNS tunnelling query: a label longer than
 * {@link MAX_PLAIN_LABEL_CHARS}, a name longer than {@link MAX_PLAIN_NAME_CHARS}, or a label of
 * at least {@link EXAMINED_LABEL_CHARS} characters that is mostly hex, or that has high
 * entropy (≥ {@link HIGH_ENTROPY_BITS} bits/char) and does not read like words. Entropy alone
 * is not enough: hyphenated English labels of 20-30 characters (`kubernetes-dashboard-svc`,
 * 3.8 bits/char) reach it too. Case is ignored (resolvers may randomize it).
 */
export function looksLikeTunnel(name: string): boolean {
  const n = (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
  if (n.length > MAX_PLAIN_NAME_CHARS) return true;
  for (const label of n.split('.')) {
    if (label.length > MAX_PLAIN_LABEL_CHARS) return true;
    if (label.length < EXAMINED_LABEL_CHARS) continue;
    if (looksHex(label)) return true;
    if (entropyBitsPerChar(label) >= HIGH_ENTROPY_BITS && looksNonWord(label)) return true;
  }
  return false;
}
