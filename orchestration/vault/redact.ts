/**
 * Redaction of secret values (pure). A {@link Redactor} knows the values of the secrets bound to
 * one piece of work (a chat turn) and replaces every occurrence of each, and of its base64,
 * base64url and hex encodings, by `[redacted:NAME]` in text and in JSON values. Text that was
 * cut (an output cap) may end in the first characters of a secret: {@link Redactor.redactCut}
 * also removes such a trailing fragment (4 characters or more).
 *
 * What it cannot see: a secret transformed any other way (reversed, split, encrypted) by a
 * program that can read it. It bounds what leaks by accident, not what a hostile program sends.
 */

/** Shortest fragment of a secret treated as a leak at the end of cut text. */
const MIN_FRAGMENT = 4;

interface Needle {
  text: string;
  label: string;
}

export interface NamedSecret {
  name: string;
  value: string;
}

export class Redactor {
  readonly #needles: Needle[];

  constructor(secrets: readonly NamedSecret[]) {
    const needles = new Map<string, string>();
    for (const s of secrets) {
      if (!s.value) continue;
      const label = `[redacted:${s.name}]`;
      const bytes = Buffer.from(s.value, 'utf8');
      for (const form of [s.value, bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex')]) {
        // Padding-free base64 of a secret also appears inside longer base64 text; match without `=`.
        const t = form.replace(/=+$/, '');
        if (t.length >= MIN_FRAGMENT && !needles.has(t)) needles.set(t, label);
      }
    }
    // Longest first, so a value that contains another secret is replaced whole.
    this.#needles = [...needles].map(([text, label]) => ({ text, label })).sort((a, b) => b.text.length - a.text.length);
  }

  /** True when there is nothing to redact. */
  get empty(): boolean {
    return this.#needles.length === 0;
  }

  redact(text: string): string {
    let out = text;
    for (const n of this.#needles) if (out.includes(n.text)) out = out.split(n.text).join(n.label);
    return out;
  }

  /** {@link redact}, then a trailing fragment of a secret (text cut in the middle of one) is replaced too. */
  redactCut(text: string): string {
    let out = this.redact(text);
    for (const n of this.#needles) {
      for (let k = Math.min(n.text.length - 1, out.length); k >= MIN_FRAGMENT; k--) {
        if (out.endsWith(n.text.slice(0, k))) {
          out = `${out.slice(0, out.length - k)}${n.label}`;
          break;
        }
      }
    }
    return out;
  }

  /** Every string inside a JSON value (keys included), redacted; the value is copied, not changed. */
  redactJson<T>(value: T): T {
    if (this.empty) return value;
    return walk(value, (s) => this.redact(s)) as T;
  }
}

function walk(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => walk(x, f));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[f(k)] = walk(x, f);
    return out;
  }
  return v;
}

/** A redactor with nothing to redact. */
export const NO_REDACTION = new Redactor([]);
