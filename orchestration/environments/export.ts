/**
 * The portable export document of an environment and the two bodies import reads. Version 1:
 *
 * ```json
 * { "kind": "director.environment", "version": 1, "name": "...", "template": "web-api", "templateVersion": 1,
 *   "variables": {"PORT": "3000"}, "secrets": {"DATABASE_URL": {"set": true}}, "files": [] }
 * ```
 *
 * `variables` holds the plain values only; a secret appears in `secrets`, never with its value.
 * A document of another kind or of a version this Director does not know is refused before
 * anything else is read (a newer version may have fields this one would misread).
 */
import { validationError } from '../../core/errors.ts';
import { checkSchema } from '../../core/validate.ts';
import { EXPORT_KIND, EXPORT_VERSION, ExportDocumentSchema, ImportBodySchema, type ExportDocument } from './schemas.ts';
import type { EnvironmentRecord } from './store.ts';
import type { FileInput } from './files.ts';

/** What an import carries, whichever body it came as. */
export interface ImportInput {
  name: string;
  template: string;
  /** Absent for the Director Protocol's body (the shipped version is meant). */
  templateVersion?: number;
  variables: Record<string, string | number | boolean>;
  secrets: Record<string, { set: boolean }>;
  files: FileInput[];
}

export function toExport(rec: EnvironmentRecord): ExportDocument {
  return {
    kind: EXPORT_KIND,
    version: EXPORT_VERSION,
    name: rec.name,
    template: rec.template,
    templateVersion: rec.templateVersion,
    variables: { ...rec.variables },
    secrets: Object.fromEntries(rec.secretNames.map((n) => [n, { set: true }])),
    files: rec.files.map((f) => ({
      path: f.path,
      content: f.content,
      mode: `0${f.mode.toString(8).padStart(3, '0')}`,
      ...(f.encoding === 'base64' ? { encoding: 'base64' as const } : {}),
    })),
  };
}

/** Reads an import body: an export document (kind and version checked first) or the Director Protocol's `{name, template, variables, files}`. */
export function parseImport(raw: unknown): ImportInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw validationError('body', 'must be a JSON object');
  const body = raw as Record<string, unknown>;
  if ('kind' in body || 'version' in body) {
    if (body.kind !== EXPORT_KIND) throw validationError('kind', `must be ${JSON.stringify(EXPORT_KIND)} (an environment export document)`);
    if (body.version !== EXPORT_VERSION) {
      const v = typeof body.version === 'number' ? `version ${body.version}` : 'a missing or non-numeric version';
      throw validationError('version', `unknown export version (${v}): this Director reads version ${EXPORT_VERSION}`);
    }
    checkSchema(ExportDocumentSchema, body);
    return {
      name: body.name,
      template: body.template,
      templateVersion: body.templateVersion,
      variables: body.variables,
      secrets: body.secrets,
      files: body.files,
    };
  }
  checkSchema(ImportBodySchema, body);
  return { name: body.name, template: body.template, variables: body.variables ?? {}, secrets: {}, files: body.files ?? [] };
}
