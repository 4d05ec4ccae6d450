/**
 * Environment templates: shipped, versioned data, one JSON file per template in `templates/`
 * (adding a template is adding a file). A template names an image, the variables an environment
 * made from it takes (each with a typed rule, see `variables.ts`), a resource ceiling for its
 * sandboxes, a network policy and files to place under /workspace. Every file is checked when
 * loaded: a template that does not fit its schema, whose defaults break its own rules, whose
 * policy does not validate or whose files leave /workspace is a bug in the release, so loading
 * throws, naming the file.
 */
import path from 'node:path';
import { Type, type Static } from 'typebox';
import { loadJsonDir } from '../../core/validate.ts';
import type { PartialLimits } from '../../policies/limits.ts';
import { validateNetworkPolicy, type NetworkPolicy } from '../../policies/network-policy.ts';
import { LimitsSchema } from '../sessions/schemas.ts';
import { checkFiles, FileSchema, type EnvFile } from './files.ts';
import { checkValue, VariableSpecSchema, type VariableSpec } from './variables.ts';

export const TEMPLATES_DIR = path.join(path.dirname(new URL(import.meta.url).pathname), 'templates');

export const TEMPLATE_NAME = '^[a-z][a-z0-9-]{0,62}$';
/** Environment variable names (the same rule as a sandbox's `environment` keys). */
export const VARIABLE_NAME = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
export const MAX_VARIABLES = 128;

export const TemplateSchema = Type.Object(
  {
    name: Type.String({ pattern: TEMPLATE_NAME }),
    version: Type.Integer({ minimum: 1, description: 'Raised whenever the template changes' }),
    description: Type.String({ minLength: 1, maxLength: 1000 }),
    image: Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$',
    }),
    variables: Type.Record(Type.String({ pattern: VARIABLE_NAME }), VariableSpecSchema, {
      maxProperties: MAX_VARIABLES,
      additionalProperties: false,
    }),
    resourceLimits: LimitsSchema,
    networkPolicy: Type.Union([Type.Unknown(), Type.Null()], {
      description: 'A Director network policy document (see POST /v1/networks/{id}/policies), or null for none',
    }),
    files: Type.Array(FileSchema, { maxItems: 64 }),
  },
  { additionalProperties: false },
);
type TemplateFile = Static<typeof TemplateSchema>;

/** A loaded template: its policy validated and normalized, its defaults in their canonical text form. */
export interface Template {
  name: string;
  version: number;
  description: string;
  image: string;
  variables: Record<string, VariableSpec>;
  resourceLimits: PartialLimits;
  networkPolicy: NetworkPolicy | null;
  files: EnvFile[];
}

/** The shipped templates by name. */
export type TemplateCatalog = ReadonlyMap<string, Template>;

/** Checks one parsed template file beyond its schema; returns the loaded template or throws naming the place. */
export function loadTemplate(file: string, t: TemplateFile): Template {
  const fail = (at: string, issue: string) => new Error(`environment template ${file} is invalid at ${at}: ${issue}`);
  if (`${t.name}.json` !== file) throw fail('/name', `must match the file name (${file})`);
  const variables: Record<string, VariableSpec> = {};
  for (const [name, spec] of Object.entries(t.variables)) {
    if (spec.kind === 'string' && spec.pattern !== undefined) {
      try {
        new RegExp(spec.pattern, 'u');
      } catch (err) {
        throw fail(`/variables/${name}/pattern`, `is not a regular expression (${(err as Error).message})`);
      }
    }
    if (spec.kind === 'integer' && spec.minimum !== undefined && spec.maximum !== undefined && spec.minimum > spec.maximum) {
      throw fail(`/variables/${name}`, 'minimum is greater than maximum');
    }
    const out: VariableSpec = { ...spec };
    if (spec.default !== undefined) {
      if (spec.secret) throw fail(`/variables/${name}/default`, 'a secret variable has no default (it would ship in the release)');
      if (spec.required)
        throw fail(`/variables/${name}/default`, 'a required variable has no default (the default would always satisfy it)');
      const r = checkValue(spec, spec.default);
      if (!r.ok) throw fail(`/variables/${name}/default`, r.message);
      out.default = r.value;
    }
    variables[name] = out;
  }
  let networkPolicy: NetworkPolicy | null = null;
  if (t.networkPolicy !== null) {
    try {
      networkPolicy = validateNetworkPolicy(t.networkPolicy);
    } catch (err) {
      throw fail('/networkPolicy', (err as Error).message);
    }
  }
  const files = checkFiles(t.files);
  if (!files.ok) throw fail(`/${files.field.replace(/\[(\d+)\]/g, '/$1').replace(/\./g, '/')}`, files.issue);
  return {
    name: t.name,
    version: t.version,
    description: t.description,
    image: t.image,
    variables,
    resourceLimits: t.resourceLimits,
    networkPolicy,
    files: files.files,
  };
}

/** Every template in `dir` (default: the shipped ones), checked; throws on the first bad file. */
export function loadTemplates(dir = TEMPLATES_DIR): TemplateCatalog {
  const out = new Map<string, Template>();
  for (const { file, value } of loadJsonDir(dir, TemplateSchema, 'environment template')) {
    const t = loadTemplate(file, value);
    out.set(t.name, t);
  }
  return out;
}
