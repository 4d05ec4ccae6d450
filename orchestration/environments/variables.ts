/**
 * Typed environment variables: the rule of each kind, applied to a value a client sent, and
 * what counts as a secret. Pure functions; error messages never contain the value (it may be a
 * secret).
 *
 * Kinds (a value may always be sent as a string; the stored form is the canonical string):
 * - `port`: an integer 1-65535 (`"3000"` or `3000`);
 * - `integer`: an integer, optionally within `minimum`..`maximum`;
 * - `enum`: one of `values`;
 * - `uri`: an absolute URI (RFC 3986 characters, no spaces) whose scheme is one of `schemes`;
 *   the parts after the scheme are not interpreted (placeholders like the Director Protocol's own
 *   `postgresql://user:pass@host:port/db` pass), and Director never connects to it;
 * - `string`: text, optionally with `minLength`, `maxLength` and an anchored `pattern`;
 * - `boolean`: `true` or `false`.
 * Every value is at most 32768 characters and contains no NUL (it becomes a process environment
 * variable).
 */
import { Type, type Static } from 'typebox';

export const MAX_VALUE_CHARS = 32_768;

const common = {
  description: Type.String({ minLength: 1, maxLength: 500 }),
  required: Type.Optional(Type.Boolean({ description: 'An environment must set it (default false)' })),
  secret: Type.Optional(Type.Boolean({ description: 'Stored encrypted and never returned (default false)' })),
  default: Type.Optional(Type.Union([Type.String({ maxLength: MAX_VALUE_CHARS }), Type.Number(), Type.Boolean()])),
};
const kind = <K extends string>(k: K) => Type.Literal(k);

export const VariableSpecSchema = Type.Union([
  Type.Object({ kind: kind('port'), ...common }, { additionalProperties: false }),
  Type.Object(
    {
      kind: kind('integer'),
      minimum: Type.Optional(Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER })),
      maximum: Type.Optional(Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER })),
      ...common,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: kind('enum'),
      values: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 64, uniqueItems: true }),
      ...common,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: kind('uri'),
      schemes: Type.Array(Type.String({ pattern: '^[a-z][a-z0-9+.-]{0,31}$' }), { minItems: 1, maxItems: 32, uniqueItems: true }),
      ...common,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: kind('string'),
      pattern: Type.Optional(Type.String({ minLength: 2, maxLength: 500, pattern: '^\\^.*\\$$', description: 'Anchored (^...$)' })),
      minLength: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_VALUE_CHARS })),
      maxLength: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_VALUE_CHARS })),
      ...common,
    },
    { additionalProperties: false },
  ),
  Type.Object({ kind: kind('boolean'), ...common }, { additionalProperties: false }),
]);
/** A variable's rule as loaded: a default is held in its canonical string form. */
export type VariableSpec = Static<typeof VariableSpecSchema>;
export type VariableKind = VariableSpec['kind'];

/** Which rule a value broke: the kind's own (`port`, `uri`...) or `minimum`, `maximum`, `pattern`, `scheme`, `required`, `unknown`, `type`. */
export interface VariableError {
  variable: string;
  rule: string;
  message: string;
}

export type Checked = { ok: true; value: string } | { ok: false; rule: string; message: string };

const bad = (rule: string, message: string): Checked => ({ ok: false, rule, message });
const INTEGER = /^[+-]?\d{1,16}$/;
/** RFC 3986 characters only, with well-formed percent escapes. */
const URI = /^([A-Za-z][A-Za-z0-9+.-]*):(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$/;
/** `scheme://userinfo@`: a URI that carries credentials (a password, or a token as the user name). */
const CREDENTIALS = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#@\s]+@/;

/** The rule text of a kind, for messages and the template listing. */
export function describeRule(spec: VariableSpec): string {
  switch (spec.kind) {
    case 'port':
      return 'must be a port number 1-65535';
    case 'integer':
      return `must be an integer${spec.minimum !== undefined ? ` ≥ ${spec.minimum}` : ''}${spec.maximum !== undefined ? `${spec.minimum !== undefined ? ' and' : ''} ≤ ${spec.maximum}` : ''}`;
    case 'enum':
      return `must be one of ${spec.values.join(', ')}`;
    case 'uri':
      return `must be an absolute URI with scheme ${spec.schemes.join(' or ')}`;
    case 'string':
      return `must be text${spec.pattern !== undefined ? ` matching ${spec.pattern}` : ''}`;
    case 'boolean':
      return 'must be true or false';
  }
}

/** Checks one value against its variable's rule; returns the canonical string form or the broken rule. */
export function checkValue(spec: VariableSpec, raw: unknown): Checked {
  if (typeof raw === 'number' && (spec.kind === 'port' || spec.kind === 'integer')) {
    if (!Number.isSafeInteger(raw)) return bad(spec.kind, describeRule(spec));
    raw = String(raw);
  }
  if (typeof raw === 'boolean' && spec.kind === 'boolean') raw = String(raw);
  if (typeof raw !== 'string')
    return bad('type', spec.kind === 'port' || spec.kind === 'integer' ? 'must be a number or a string' : 'must be a string');
  if (raw.length > MAX_VALUE_CHARS) return bad('maxLength', `must be at most ${MAX_VALUE_CHARS} characters`);
  if (raw.includes('\u0000')) return bad('type', 'must not contain NUL characters');
  const v = raw;
  switch (spec.kind) {
    case 'port': {
      const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
      return n >= 1 && n <= 65535 ? { ok: true, value: String(n) } : bad('port', describeRule(spec));
    }
    case 'integer': {
      if (!INTEGER.test(v)) return bad('integer', describeRule(spec));
      const n = Number(v);
      if (!Number.isSafeInteger(n)) return bad('integer', describeRule(spec));
      if (spec.minimum !== undefined && n < spec.minimum) return bad('minimum', describeRule(spec));
      if (spec.maximum !== undefined && n > spec.maximum) return bad('maximum', describeRule(spec));
      return { ok: true, value: String(n) };
    }
    case 'enum':
      return spec.values.includes(v) ? { ok: true, value: v } : bad('enum', describeRule(spec));
    case 'boolean':
      return v === 'true' || v === 'false' ? { ok: true, value: v } : bad('boolean', describeRule(spec));
    case 'uri': {
      const m = URI.exec(v);
      if (!m) return bad('uri', describeRule(spec));
      if (!spec.schemes.includes(m[1]!.toLowerCase())) return bad('scheme', describeRule(spec));
      return { ok: true, value: v };
    }
    case 'string':
      if (spec.minLength !== undefined && v.length < spec.minLength)
        return bad('minLength', `must be at least ${spec.minLength} characters`);
      if (spec.maxLength !== undefined && v.length > spec.maxLength)
        return bad('maxLength', `must be at most ${spec.maxLength} characters`);
      if (spec.pattern !== undefined && !new RegExp(spec.pattern, 'u').test(v)) return bad('pattern', `must match ${spec.pattern}`);
      return { ok: true, value: v };
  }
}

/** Whether a value carries credentials in a URI (`scheme://user:pass@host`, `https://token@host`): such values are secrets whatever the template says. */
export const hasCredentials = (value: string): boolean => CREDENTIALS.test(value);

/** Whether a value of this variable is stored encrypted and never returned. */
export const isSecretValue = (spec: VariableSpec | undefined, value: string): boolean => spec?.secret === true || hasCredentials(value);

/** The outcome of checking a set of variables against a template. */
export interface Resolution {
  /** Every variable that has a value (given, kept or default), in canonical form. Secret values included. */
  values: Record<string, string>;
  /** Names among `values` that are secrets. */
  secrets: Set<string>;
  /** Names that were given in the request. */
  given: Set<string>;
  errors: VariableError[];
}

/**
 * Checks `input` (what a client sent) against a template's variables. A variable absent from
 * `input` keeps its value in `current` (an existing environment's; secrets there may be
 * unknown to the caller, listed in `currentSecrets` without a value), else gets its default;
 * a required variable with none is an error. Names the template does not declare are errors.
 */
export function resolveVariables(
  specs: Readonly<Record<string, VariableSpec>>,
  template: string,
  input: Readonly<Record<string, unknown>>,
  current: { values?: Readonly<Record<string, string>>; secretsSet?: ReadonlySet<string> } = {},
): Resolution {
  const out: Resolution = { values: {}, secrets: new Set(), given: new Set(), errors: [] };
  for (const name of Object.keys(input)) {
    if (!Object.hasOwn(specs, name)) {
      out.errors.push({
        variable: name,
        rule: 'unknown',
        message: `is not a variable of template ${template} (known: ${Object.keys(specs).join(', ') || 'none'})`,
      });
    }
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (Object.hasOwn(input, name) && input[name] !== undefined) {
      out.given.add(name);
      const r = checkValue(spec, input[name]);
      if (!r.ok) {
        out.errors.push({ variable: name, rule: r.rule, message: r.message });
        continue;
      }
      out.values[name] = r.value;
      if (isSecretValue(spec, r.value)) out.secrets.add(name);
      continue;
    }
    const kept = current.values?.[name];
    if (kept !== undefined) {
      out.values[name] = kept;
      if (isSecretValue(spec, kept) || current.secretsSet?.has(name)) out.secrets.add(name);
    } else if (current.secretsSet?.has(name)) {
      // Set, but its value is sealed and not needed to answer: it stays as it is.
      out.secrets.add(name);
    } else if (spec.default !== undefined) {
      out.values[name] = String(spec.default);
    } else if (spec.required) {
      out.errors.push({ variable: name, rule: 'required', message: spec.secret ? 'is required (a secret)' : 'is required' });
    }
  }
  return out;
}
