import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance, FastifySchemaValidationError } from 'fastify';
import { validationError, type DirectorError } from '../core/errors.ts';
import { fieldPath } from '../core/validate.ts';

/**
 * Two validators: request bodies are validated strictly (no type coercion — `null` must never
 * become `false` — and no silent removal of unknown fields: they are refused); querystrings and
 * path params are coerced from text, as they can only be text.
 */
export function installValidators(app: FastifyInstance): void {
  // `discriminator`: a `oneOf` keyed by a property (a workflow step's `type`) reports the errors of
  // the branch the key selects, not of every branch.
  const common = { allErrors: false, strict: false, removeAdditional: false, useDefaults: true, discriminator: true } as const;
  const strict = new Ajv({ ...common, coerceTypes: false });
  const coercing = new Ajv({ ...common, coerceTypes: 'array' });
  addFormats.default(strict);
  addFormats.default(coercing);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict.compile(schema) : coercing.compile(schema)));
}

/** Names the field of the first validation error: `resourceLimits.cpu`, `command[1]`, `colour`. */
export function validationToError(errors: FastifySchemaValidationError[], context: string): DirectorError {
  const e = errors[0] as ErrorObject | undefined;
  const where = context === 'body' ? '' : `${context}.`;
  if (!e) return validationError(context, 'invalid');
  let field = fieldPath(e.instancePath);
  const params = e.params as { additionalProperty?: string; missingProperty?: string };
  if (e.keyword === 'additionalProperties' && params.additionalProperty) {
    return validationError(`${where}${field ? `${field}.` : ''}${params.additionalProperty}`, 'unknown field (not part of the API)');
  }
  if (e.keyword === 'required' && params.missingProperty) {
    return validationError(`${where}${field ? `${field}.` : ''}${params.missingProperty}`, 'is required');
  }
  if (e.keyword === 'propertyNames' || (e.keyword === 'pattern' && e.propertyName)) {
    field = `${field}${field ? '.' : ''}${String(e.propertyName ?? '')}`;
  }
  return validationError(`${where}${field || (context === 'body' ? 'body' : context)}`, e.message ?? 'invalid');
}
