import type { Clock } from '../../core/clock.ts';
import { DirectorError, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { LimitCeiling } from '../../policies/limits.ts';
import type { NetworkPolicy } from '../../policies/network-policy.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import { SecretError, type SecretBox } from '../../core/secrets.ts';
import { parseImport, toExport } from './export.ts';
import { checkFiles, fileBytes, mergeFiles, type EnvFile, type FileInput } from './files.ts';
import { CreateEnvironmentSchema, ValidateEnvironmentSchema, type ExportDocument } from './schemas.ts';
import type { EnvironmentRecord, EnvironmentStore } from './store.ts';
import type { Template, TemplateCatalog } from './template.ts';
import { resolveVariables, type Resolution, type VariableError } from './variables.ts';
import { notFoundFor } from '../../runtime/not-found.ts';

export interface EnvironmentServiceDeps {
  store: EnvironmentStore;
  /** The shipped templates (`loadTemplates()`). */
  templates: TemplateCatalog;
  /** Seals secret values at rest (`SecretBox.fromConfig(config)`). */
  secrets: SecretBox;
  events: EventSink;
  clock: Clock;
}

/** What a sandbox made from an environment gets (see {@link EnvironmentService.forSandbox}). */
export interface SandboxEnvironment {
  environmentId: string;
  image: string;
  /** Every variable with a value, secrets decrypted: the sandbox's process environment. Keep it in memory only. */
  environment: Record<string, string>;
  /** Names in `environment` whose values are secrets (never log or return them). */
  secretNames: string[];
  /** The template's resource ceiling, as the `environment` level. */
  limitCeiling: LimitCeiling;
  networkPolicy: NetworkPolicy | null;
  /** The template's files overlaid by the environment's own, sorted by path. */
  files: { path: string; mode: number; content: Buffer }[];
}

/** `POST /{id}/validate`: the outcome per variable, nothing saved. */
export interface ValidationReport {
  valid: boolean;
  errors: VariableError[];
  variables: Record<string, { valid: boolean; secret: boolean; set: boolean; errors: VariableError[] }>;
}

const aadOf = (id: string) => `environment:${id}`;

/**
 * Environments: a template's image, ceiling, policy and files, with variables checked against
 * the template's typed rules. Secret values (variables the template marks secret, URIs with
 * credentials) are sealed at rest and leave this service only through {@link forSandbox}; every
 * other answer names them as set, without the value. An environment keeps the template as it
 * was when it was made (its snapshot), so a newer release of the template changes nothing for it.
 */
export class EnvironmentService {
  readonly #d: EnvironmentServiceDeps;
  constructor(deps: EnvironmentServiceDeps) {
    this.#d = deps;
  }

  /** The shipped templates, by name. */
  templates(): Template[] {
    return [...this.#d.templates.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  #template(name: string, field = 'template'): Template {
    const t = this.#d.templates.get(name);
    if (!t) throw validationError(field, `no template ${name} (templates: ${[...this.#d.templates.keys()].sort().join(', ')})`);
    return t;
  }

  create(caller: Caller, raw: unknown): EnvironmentRecord {
    checkSchema(CreateEnvironmentSchema, raw);
    const template = this.#template(raw.template);
    const r = resolveVariables(template.variables, template.name, raw.variables ?? {});
    throwIfInvalid(r.errors);
    const rec = this.#insert(caller, raw.name, template, r, raw.files ?? []);
    this.#event('environment_created', caller, rec);
    return rec;
  }

  /**
   * Imports an export document (any version this Director reads) or the Director Protocol's
   * import body. Variables are checked against the shipped template; secrets the document marks
   * as set must be supplied in `variables` (exports never carry their values).
   */
  import(caller: Caller, raw: unknown): EnvironmentRecord {
    const doc = parseImport(raw);
    const template = this.#template(doc.template);
    if (doc.templateVersion !== undefined && doc.templateVersion > template.version) {
      throw validationError(
        'templateVersion',
        `the document was exported from ${template.name} version ${doc.templateVersion}; this Director ships version ${template.version}`,
      );
    }
    for (const name of Object.keys(doc.secrets)) {
      if (!Object.hasOwn(template.variables, name))
        throw validationError(`secrets.${name}`, `is not a variable of template ${template.name}`);
    }
    const r = resolveVariables(template.variables, template.name, doc.variables);
    for (const [name, mark] of Object.entries(doc.secrets)) {
      if (mark.set && !r.given.has(name)) {
        // Replaces a plain "is required": the reason it is missing is the export.
        r.errors = r.errors.filter((e) => e.variable !== name);
        r.errors.push({
          variable: name,
          rule: 'required',
          message:
            'was set in the exported environment, but exports never carry secret values: supply it in variables (or drop it from secrets)',
        });
      }
    }
    throwIfInvalid(r.errors);
    const rec = this.#insert(caller, doc.name, template, r, doc.files);
    this.#event('environment_imported', caller, rec);
    return rec;
  }

  #insert(caller: Caller, name: string, template: Template, r: Resolution, files: readonly FileInput[]): EnvironmentRecord {
    const own = checkFiles(files);
    if (!own.ok) throw validationError(own.field, own.issue);
    const id = newId('env');
    const plain: Record<string, string> = {};
    const secret: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.values)) (r.secrets.has(k) ? secret : plain)[k] = v;
    const secretNames = Object.keys(secret).sort();
    const now = this.#d.clock.nowMs();
    const rec: EnvironmentRecord = {
      id,
      workspace: caller.workspace,
      name,
      template: template.name,
      templateVersion: template.version,
      snapshot: template,
      variables: plain,
      secretNames,
      sealed: secretNames.length ? this.#d.secrets.sealJson(secret, aadOf(id)) : null,
      files: own.files,
      createdBy: caller.actor ?? null,
      createdMs: now,
      updatedMs: now,
      deletedMs: null,
    };
    this.#d.store.insert(rec);
    return rec;
  }

  /** An environment of the caller's workspace; 404 otherwise (another workspace's is recorded as a `cross_workspace_attempt`). */
  get(caller: Caller, id: string): EnvironmentRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) throw notFoundFor(this.#d.events, caller, 'environment', id, this.#d.store.byId(id)?.workspace);
    return rec;
  }

  list(caller: Caller, f: { template?: string; limit: number; offset: number }): { items: EnvironmentRecord[]; total: number } {
    return this.#d.store.list(caller.workspace, f);
  }

  /**
   * Checks `variables` as if they replaced the environment's values (unset ones keep theirs,
   * secrets included) against its template; answers per variable and saves nothing.
   */
  validate(caller: Caller, id: string, raw: unknown): ValidationReport {
    checkSchema(ValidateEnvironmentSchema, raw ?? {});
    const rec = this.get(caller, id);
    const input = (raw as { variables?: Record<string, unknown> } | undefined)?.variables ?? {};
    const specs = rec.snapshot.variables;
    const r = resolveVariables(specs, rec.template, input, { values: rec.variables, secretsSet: new Set(rec.secretNames) });
    const variables: ValidationReport['variables'] = {};
    for (const name of [...Object.keys(specs), ...Object.keys(input).filter((n) => !Object.hasOwn(specs, n))]) {
      const errors = r.errors.filter((e) => e.variable === name);
      // A secret as GET shows it: one the template declares secret (set or not) or a value that is one.
      const secret = specs[name]?.secret === true || r.secrets.has(name);
      variables[name] = { valid: errors.length === 0, secret, set: name in r.values || r.secrets.has(name), errors };
    }
    return { valid: r.errors.length === 0, errors: r.errors, variables };
  }

  /** The portable export document: plain values and files; secrets only as `{set: true}`. */
  export(caller: Caller, id: string): ExportDocument {
    return toExport(this.get(caller, id));
  }

  /** Deletes the environment and erases its secrets. Sandboxes made from it keep what they got. */
  delete(caller: Caller, id: string): void {
    const rec = this.get(caller, id);
    if (this.#d.store.markDeleted(rec.id, this.#d.clock.nowMs())) this.#event('environment_deleted', caller, rec);
  }

  /**
   * What a sandbox made from environment `id` gets: the template's image, the variables as its
   * environment (secrets decrypted, in memory only), the template's resource ceiling, network
   * policy and files (the environment's own over the template's). 404 for another workspace's.
   */
  forSandbox(caller: Caller, id: string): SandboxEnvironment {
    const rec = this.get(caller, id);
    const environment: Record<string, string> = { ...rec.variables };
    if (rec.sealed) {
      try {
        Object.assign(environment, this.#d.secrets.openJson<Record<string, string>>(rec.sealed, aadOf(rec.id)));
      } catch (err) {
        if (!(err instanceof SecretError)) throw err;
        this.#d.events.emit({
          type: 'secret_unreadable',
          severity: 'high',
          workspace: rec.workspace,
          actor: caller.actor ?? null,
          details: { resource: 'environment', id: rec.id, reason: err.reason },
        });
        throw new DirectorError('INTERNAL_ERROR', `the secrets of environment ${rec.id} cannot be decrypted: ${err.message}`, undefined, {
          cause: err,
        });
      }
    }
    const s = rec.snapshot;
    return {
      environmentId: rec.id,
      image: s.image,
      environment,
      secretNames: [...rec.secretNames],
      limitCeiling: { level: 'environment', id: rec.id, limits: { ...s.resourceLimits } },
      networkPolicy: s.networkPolicy,
      files: mergeFiles(s.files, rec.files).map((f: EnvFile) => ({ path: f.path, mode: f.mode, content: fileBytes(f) })),
    };
  }

  #event(type: string, caller: Caller, rec: EnvironmentRecord): void {
    // Names only: values (even plain ones) stay out of the event stream.
    this.#d.events.emit({
      type,
      severity: 'info',
      workspace: rec.workspace,
      actor: caller.actor ?? null,
      details: {
        environmentId: rec.id,
        name: rec.name,
        template: rec.template,
        templateVersion: rec.templateVersion,
        variables: Object.keys(rec.variables).sort(),
        secrets: rec.secretNames,
      },
    });
  }
}

/** One 400 for every variable that breaks a rule; the message and `field` name the first, `errors` lists all. */
export function throwIfInvalid(errors: readonly VariableError[]): void {
  if (errors.length === 0) return;
  const text = (e: VariableError) => `variables.${e.variable}: ${e.message}`;
  const first = errors[0]!;
  throw new DirectorError('VALIDATION_ERROR', `Invalid ${errors.map(text).join('; ')}`, {
    field: `variables.${first.variable}`,
    issue: first.message,
    rule: first.rule,
    errors: errors.map((e) => ({ field: `variables.${e.variable}`, ...e })),
  });
}
