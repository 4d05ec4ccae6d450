/**
 * The one home of "a value against a TypeBox schema, and what to tell the caller when it does
 * not fit", and of the small parsers every layer needs (comma-separated lists, a directory of
 * shipped JSON files). Request bodies, WebSocket messages, config values and shipped data files
 * all go through here, so a schema error reads the same wherever it comes from.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Static, TSchema } from 'typebox';
import { Compile, Validator } from 'typebox/compile';
import { Value } from 'typebox/value';
import { validationError, type DirectorError } from './errors.ts';

/** The shape of one TypeBox (ajv-style) error that this module reads. */
export interface SchemaIssue {
  keyword: string;
  instancePath: string;
  params: unknown;
  message: string;
}

/** `/a/0/b` → `a[0].b`: a JSON pointer as the field name the API's errors use. */
export function fieldPath(pointer: string): string {
  return pointer
    .split('/')
    .filter(Boolean)
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

/**
 * A schema compiled once into a checking function (TypeBox `Compile`), for schemas checked on a
 * hot path (each chat request, each tool call): `Value.Check` walks the schema on every call,
 * ~0.1 ms for a chat request between other work, the compiled check a few µs. Same answers:
 * a value that does not fit is described by `Value.Errors` on the schema, as for a plain schema.
 * Made once where the schema is declared (a constant, never changed).
 */
export type CompiledSchema<T extends TSchema> = Validator<Record<string, never>, T>;
export const compileSchema = <T extends TSchema>(schema: T): CompiledSchema<T> => Compile(schema) as unknown as CompiledSchema<T>;

/** The first way `value` does not fit `schema`, or undefined when it fits. */
export function firstIssue(schema: TSchema | CompiledSchema<TSchema>, value: unknown): SchemaIssue | undefined {
  if (schema instanceof Validator) {
    if (schema.Check(value)) return undefined;
    return [...Value.Errors(schema.Type(), value)][0];
  }
  if (Value.Check(schema, value)) return undefined;
  return [...Value.Errors(schema, value)][0];
}

/** Turns the first schema error into a VALIDATION_ERROR naming the field (`resourceLimits.memory`). */
export function schemaError(e: SchemaIssue | undefined, prefix = ''): DirectorError {
  const join = (a: string, b: string) => (a ? `${a}.${b}` : b);
  if (!e) return validationError(prefix || 'body', 'invalid request');
  const at = fieldPath(e.instancePath);
  const field = prefix && at ? `${prefix}.${at}` : prefix || at;
  const params = e.params as { additionalProperties?: string[]; requiredProperties?: string[] };
  if (e.keyword === 'boolean' && e.message === 'schema is false')
    return validationError(field || 'body', 'unknown field (not part of the API)');
  if (e.keyword === 'additionalProperties' && params.additionalProperties?.length) {
    return validationError(join(field, params.additionalProperties[0]!), 'unknown field (not part of the API)');
  }
  if (e.keyword === 'required' && params.requiredProperties?.length) {
    return validationError(join(field, params.requiredProperties[0]!), 'is required');
  }
  return validationError(field || 'body', e.message);
}

/** Throws the VALIDATION_ERROR of {@link schemaError} unless `value` fits `schema`. */
export function checkSchema<T extends TSchema>(schema: T | CompiledSchema<T>, value: unknown, prefix = ''): asserts value is Static<T> {
  const issue = firstIssue(schema, value);
  if (issue) throw schemaError(issue, prefix);
}

/**
 * `scheme://host[:port]` in the form browsers send it as `Origin`; throws naming `name` (the
 * setting or option) otherwise. Wildcards are refused: an allowed origin is a site the operator
 * trusts, named exactly.
 */
export function normalizeOrigin(raw: string, name: string): string {
  if (raw.includes('*')) throw new Error(`${name}: wildcards are not allowed (got ${JSON.stringify(raw)}); list each origin`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${name}: ${JSON.stringify(raw)} is not an origin like https://ui.example.com`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash || url.username) {
    throw new Error(`${name}: ${JSON.stringify(raw)} is not an origin like https://ui.example.com`);
  }
  return url.origin;
}

/** `at /a/b: message` for a value that does not fit, for files and settings (not request bodies); null when it fits. */
export function describeIssue(schema: TSchema, value: unknown): string | null {
  const e = firstIssue(schema, value);
  if (!e) return null;
  return `at ${e.instancePath || '/'}: ${e.message}`;
}

/** Comma-separated text as its trimmed, non-empty items (`"a, b,,c"` → `['a', 'b', 'c']`). */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Every `*.json` file of a directory shipped with Director, parsed and checked against `schema`,
 * in file-name order. A file that does not parse or fit is a bug in the release: this throws,
 * naming the file and the place.
 */
export function loadJsonDir<T extends TSchema>(dir: string, schema: T, what: string): { file: string; value: Static<T> }[] {
  const out: { file: string; value: Static<T> }[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    } catch (err) {
      throw new Error(`${what} ${file} is not valid JSON`, { cause: err });
    }
    const issue = describeIssue(schema, raw);
    if (issue) throw new Error(`${what} ${file} is invalid ${issue}`);
    out.push({ file, value: raw as Static<T> });
  }
  return out;
}
