/**
 * Files an environment places in its sandboxes: a path under /workspace, the content (UTF-8
 * text, or base64 for bytes) and a permission mode. Files are configuration, not secrets: they
 * are returned by GET and export as they are; credentials belong in secret variables.
 */
import path from 'node:path/posix';
import { Type, type Static } from 'typebox';

export const FILES_ROOT = '/workspace';
/** Largest file, decoded. */
export const MAX_FILE_BYTES = 262_144;
/** Largest total of an environment's own files, decoded. */
export const MAX_FILES_BYTES = 1_048_576;
export const MAX_FILES = 64;

export const FileSchema = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      maxLength: 256,
      pattern: '^[A-Za-z0-9._@+/-]+$',
      description: 'Where the file goes: under /workspace (absolute, or relative to /workspace)',
    }),
    content: Type.String({
      maxLength: 349_528,
      description: `The content: text, or base64 with \`encoding: base64\` (at most ${MAX_FILE_BYTES} bytes decoded)`,
    }),
    mode: Type.Optional(
      Type.String({ pattern: '^0?[0-7]{3}$', description: 'Permission bits in octal (`0644`, default; `0755` for scripts)' }),
    ),
    encoding: Type.Optional(
      Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { description: 'How `content` is written (default `utf8`)' }),
    ),
  },
  { additionalProperties: false },
);
export type FileInput = Static<typeof FileSchema>;

/** A file as stored and handed to a sandbox. */
export interface EnvFile {
  path: string;
  content: string;
  mode: number;
  encoding: 'utf8' | 'base64';
}

/** `app/x.js` → `/workspace/app/x.js`; refuses anything that resolves outside /workspace. */
export function normalizeFilePath(p: string): { ok: true; path: string } | { ok: false; issue: string } {
  const abs = path.normalize(p.startsWith('/') ? p : `${FILES_ROOT}/${p}`);
  if (!abs.startsWith(`${FILES_ROOT}/`) || abs.length <= FILES_ROOT.length + 1) {
    return { ok: false, issue: `must be a file under ${FILES_ROOT} (relative paths are taken from there)` };
  }
  if (abs.endsWith('/')) return { ok: false, issue: 'must name a file, not a directory' };
  return { ok: true, path: abs };
}

export const fileBytes = (f: Pick<EnvFile, 'content' | 'encoding'>): Buffer =>
  f.encoding === 'base64' ? Buffer.from(f.content, 'base64') : Buffer.from(f.content, 'utf8');

/**
 * Checks an environment's own files (from a create or an import body): paths, sizes, no
 * duplicates. Returns them normalized, or the first problem as `[field, issue]` (`files[2].path`).
 */
export function checkFiles(
  files: readonly FileInput[],
  at = 'files',
): { ok: true; files: EnvFile[] } | { ok: false; field: string; issue: string } {
  if (files.length > MAX_FILES) return { ok: false, field: at, issue: `at most ${MAX_FILES} files` };
  const out: EnvFile[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (const [i, f] of files.entries()) {
    const p = normalizeFilePath(f.path);
    if (!p.ok) return { ok: false, field: `${at}[${i}].path`, issue: p.issue };
    if (seen.has(p.path)) return { ok: false, field: `${at}[${i}].path`, issue: `${p.path} is listed twice` };
    seen.add(p.path);
    const encoding = f.encoding ?? 'utf8';
    if (encoding === 'base64' && !/^[A-Za-z0-9+/]*={0,2}$/.test(f.content)) {
      return { ok: false, field: `${at}[${i}].content`, issue: 'is not base64' };
    }
    const file: EnvFile = { path: p.path, content: f.content, mode: f.mode === undefined ? 0o644 : parseInt(f.mode, 8), encoding };
    const size = fileBytes(file).length;
    if (size > MAX_FILE_BYTES) return { ok: false, field: `${at}[${i}].content`, issue: `is larger than ${MAX_FILE_BYTES} bytes` };
    total += size;
    if (total > MAX_FILES_BYTES)
      return { ok: false, field: `${at}[${i}].content`, issue: `the files total more than ${MAX_FILES_BYTES} bytes` };
    out.push(file);
  }
  return { ok: true, files: out };
}

/** The template's files overlaid by the environment's own (same path: the environment's wins), sorted by path. */
export function mergeFiles(template: readonly EnvFile[], own: readonly EnvFile[]): EnvFile[] {
  const byPath = new Map<string, EnvFile>();
  for (const f of template) byPath.set(f.path, f);
  for (const f of own) byPath.set(f.path, f);
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
