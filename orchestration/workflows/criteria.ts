/**
 * Verify criteria: compiled when a workflow is created (so a criterion that cannot be checked is a
 * 400 naming the step, never a run-time surprise) and judged from facts the runner gathers.
 *
 * Accepted forms, alone or in an array (all must hold):
 * - phrases (case and surrounding spaces ignored): `tests pass`, `tests passed`, `all tests pass`,
 *   `build succeeds`, `build passes`, `succeeds`, `command succeeds`, `exit code 0` (the previous
 *   execute exited 0); `exit code N`; `output contains "TEXT"`; `file /PATH exists`;
 * - objects with exactly one key: `{exitCode: N}` (of the previous execute), `{stdoutMatches:
 *   "regex"}` (JavaScript syntax, against the previous execute's kept stdout), `{command: "sh
 *   line" | ["argv", ...]}` (run in the workflow's sandbox; exit status 0 holds), `{fileExists:
 *   "/path"}` (exists in the sandbox, any type).
 *
 * "The previous execute" is the nearest execute step before the verify; criteria that need one
 * are refused when there is none.
 */
import path from 'node:path/posix';
import { validationError } from '../../core/errors.ts';

export type Criterion =
  | { kind: 'exitCode'; exitCode: number; of: number; text: string }
  | { kind: 'stdoutMatches'; pattern: string; of: number; text: string }
  | { kind: 'command'; command: string | string[]; text: string }
  | { kind: 'fileExists'; path: string; text: string };

/** What a criterion is judged on: the previous execute's result, or the result of the check's own command. */
export interface Facts {
  exitCode: number;
  timedOut: boolean;
  stdout: string;
}

export interface Verdict {
  ok: boolean;
  /** What the check saw, in words (`exit code 1`, `stdout does not match /ok/`). */
  saw: string;
}

const PASS_PHRASES = new Set([
  'tests pass',
  'tests passed',
  'test passes',
  'all tests pass',
  'all tests passed',
  'build succeeds',
  'build passes',
  'succeeds',
  'success',
  'command succeeds',
  'previous step succeeds',
]);

export const PHRASE_HELP =
  'one of the phrases "tests pass", "build succeeds", "succeeds", "exit code N", \'output contains "TEXT"\', "file /PATH exists", or an object {exitCode}, {stdoutMatches}, {command} or {fileExists}';

const SAFE_PATH = /^\/[A-Za-z0-9._@+ /-]*$/;
const MAX_CRITERIA = 32;
const MAX_PATTERN = 1024;
const MAX_COMMAND = 131_072;

/** The index of the nearest execute step before `at`, or -1. */
export function previousExecute(steps: readonly { type: string }[], at: number): number {
  for (let i = at - 1; i >= 0; i--) if (steps[i]!.type === 'execute') return i;
  return -1;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Compiles a verify step's `criteria`. Throws a VALIDATION_ERROR whose field is
 * `steps[i].criteria` (or `steps[i].criteria[k]` inside an array) saying why it cannot be checked.
 */
export function compileCriteria(raw: unknown, at: number, steps: readonly { type: string }[]): Criterion[] {
  const field = `steps[${at}].criteria`;
  if (Array.isArray(raw)) {
    if (raw.length === 0) throw validationError(field, 'an empty list checks nothing');
    if (raw.length > MAX_CRITERIA) throw validationError(field, `at most ${MAX_CRITERIA} criteria`);
    return raw.map((c, k) => compileOne(c, `${field}[${k}]`, at, steps));
  }
  return [compileOne(raw, field, at, steps)];
}

function compileOne(raw: unknown, field: string, at: number, steps: readonly { type: string }[]): Criterion {
  const prev = previousExecute(steps, at);
  const needPrevious = (what: string): number => {
    if (prev < 0) throw validationError(field, `${what} needs an execute step before this verify, and there is none`);
    return prev;
  };
  if (typeof raw === 'string') {
    const phrase = raw.trim().toLowerCase().replace(/\s+/g, ' ').replace(/\.$/, '');
    if (PASS_PHRASES.has(phrase)) return exitCode(0, needPrevious(`"${raw}"`), raw.trim());
    const code = /^(?:exit code|exits with|exit status) (\d{1,3})$/.exec(phrase);
    if (code) return exitCode(Number(code[1]), needPrevious(`"${raw}"`), raw.trim());
    // Matched on the original text: the quoted part keeps its case.
    const contains = /^\s*(?:output|stdout) (?:contains|includes) (["'])(.+)\1\s*\.?\s*$/i.exec(raw);
    if (contains) return stdoutMatches(escapeRegex(contains[2]!), needPrevious(`"${raw}"`), field, raw.trim());
    const file = /^\s*file (\S+) exists\s*\.?\s*$/i.exec(raw);
    if (file) return fileExists(file[1]!, field);
    throw validationError(field, `"${raw.slice(0, 100)}" is not a criterion Director can check: use ${PHRASE_HELP}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw validationError(field, `must be ${PHRASE_HELP}`);
  const keys = Object.keys(raw);
  if (keys.length !== 1)
    throw validationError(field, `an object criterion has exactly one of exitCode, stdoutMatches, command, fileExists`);
  const key = keys[0]!;
  const v = (raw as Record<string, unknown>)[key];
  switch (key) {
    case 'exitCode':
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 255) throw validationError(`${field}.exitCode`, 'must be 0-255');
      return exitCode(v as number, needPrevious('exitCode'), `exit code ${String(v)}`);
    case 'stdoutMatches':
      if (typeof v !== 'string' || v.length === 0 || v.length > MAX_PATTERN)
        throw validationError(`${field}.stdoutMatches`, `must be a regular expression of 1-${MAX_PATTERN} characters`);
      return stdoutMatches(v, needPrevious('stdoutMatches'), `${field}.stdoutMatches`, `stdout matches /${v}/`);
    case 'command':
      return command(v, `${field}.command`);
    case 'fileExists':
      if (typeof v !== 'string') throw validationError(`${field}.fileExists`, 'must be an absolute path');
      return fileExists(v, `${field}.fileExists`);
    default:
      throw validationError(`${field}.${key}`, `unknown criterion (one of exitCode, stdoutMatches, command, fileExists)`);
  }
}

function exitCode(code: number, of: number, said: string): Criterion {
  return { kind: 'exitCode', exitCode: code, of, text: `${said} (exit code ${code} of step ${of + 1})` };
}

function stdoutMatches(pattern: string, of: number, field: string, said: string): Criterion {
  try {
    new RegExp(pattern);
  } catch (err) {
    throw validationError(field, `not a valid regular expression: ${(err as Error).message}`);
  }
  return { kind: 'stdoutMatches', pattern, of, text: `${said} (stdout of step ${of + 1})` };
}

function command(v: unknown, field: string): Criterion {
  if (typeof v === 'string') {
    if (v.length === 0 || v.length > MAX_COMMAND) throw validationError(field, `must be 1-${MAX_COMMAND} characters`);
    return { kind: 'command', command: v, text: `command \`${v.slice(0, 200)}\` exits 0` };
  }
  if (!Array.isArray(v) || v.length === 0 || v.length > 4096 || !v.every((a) => typeof a === 'string' && a.length <= MAX_COMMAND))
    throw validationError(field, 'must be a shell line or a non-empty argv array of strings');
  return { kind: 'command', command: v as string[], text: `command ${JSON.stringify(v).slice(0, 200)} exits 0` };
}

function fileExists(p: string, field: string): Criterion {
  const trimmed = p.length > 1 ? p.replace(/\/$/, '') : p;
  if (!SAFE_PATH.test(trimmed) || path.normalize(trimmed) !== trimmed || trimmed.length > 1024)
    throw validationError(field, `${JSON.stringify(p.slice(0, 100))} is not a normalized absolute path`);
  return { kind: 'fileExists', path: trimmed, text: `${trimmed} exists` };
}

/** Judges one criterion on its facts (the previous execute's, or its own command's). */
export function judge(c: Criterion, f: Facts): Verdict {
  switch (c.kind) {
    case 'exitCode':
      if (f.timedOut) return { ok: false, saw: `step ${c.of + 1} timed out` };
      return f.exitCode === c.exitCode ? { ok: true, saw: `exit code ${f.exitCode}` } : { ok: false, saw: `exit code ${f.exitCode}` };
    case 'stdoutMatches': {
      const ok = new RegExp(c.pattern).test(f.stdout);
      return {
        ok,
        saw: ok ? `stdout matches /${c.pattern}/` : `stdout does not match /${c.pattern}/ (${f.stdout.length} characters kept)`,
      };
    }
    case 'command':
      if (f.timedOut) return { ok: false, saw: 'the command timed out' };
      return { ok: f.exitCode === 0, saw: `the command exited ${f.exitCode}` };
    case 'fileExists':
      if (f.timedOut) return { ok: false, saw: 'the check timed out' };
      return f.exitCode === 0 ? { ok: true, saw: `${c.path} exists` } : { ok: false, saw: `${c.path} does not exist` };
  }
}
