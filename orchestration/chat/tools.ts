import path from 'node:path/posix';
import { Readable } from 'node:stream';
import { jsonSchema, tool, type Tool, type ToolSet } from 'ai';
import { Type, type Static, type TSchema } from 'typebox';
import { compileSchema, firstIssue, schemaError, type CompiledSchema } from '../../core/validate.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { ToolName } from '../agents/schemas.ts';

/**
 * The four tools an agent may call, as data: the JSON schema the model is given (and every call
 * is validated against before anything runs) and a description. What they do is in
 * {@link ToolRunner}; each runs in the agent's sandbox through the runtime's Executor or
 * FileTransfer, so the sandbox's limits, network policy, output caps and process-group kill
 * apply exactly as to any execute.
 */

const PathArg = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: 'A path in the sandbox: absolute, or relative to /workspace (the writable working directory)',
});

export const TOOL_SCHEMAS = {
  execute: Type.Object(
    {
      command: Type.String({ minLength: 1, maxLength: 16_384, description: 'A shell command line, run with /bin/sh -c in /workspace' }),
      timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000, description: 'Kill the command after this many ms' })),
    },
    { additionalProperties: false },
  ),
  read_file: Type.Object({ path: PathArg }, { additionalProperties: false }),
  write_file: Type.Object(
    { path: PathArg, content: Type.String({ maxLength: 1_048_576, description: 'UTF-8 text; replaces the file' }) },
    { additionalProperties: false },
  ),
  list_files: Type.Object({ path: Type.Optional(PathArg) }, { additionalProperties: false }),
} satisfies Record<ToolName, TSchema>;

export type ToolInput<N extends ToolName> = Static<(typeof TOOL_SCHEMAS)[N]>;

const deepFreeze = <T>(v: T): T => {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
};
const eachTool = <V>(f: (name: ToolName) => V): Record<ToolName, V> => ({
  execute: f('execute'),
  read_file: f('read_file'),
  write_file: f('write_file'),
  list_files: f('list_files'),
});
/** The schemas compiled once: each call's input is checked twice (the SDK's validate, then the runner's). */
const TOOL_CHECKS: Record<ToolName, CompiledSchema<TSchema>> = eachTool((name) => compileSchema(TOOL_SCHEMAS[name]));
/** The JSON schemas the model is given, as plain JSON made once (frozen: shared by every turn). */
const TOOL_JSON: Record<ToolName, Parameters<typeof jsonSchema>[0]> = eachTool((name) =>
  deepFreeze(JSON.parse(JSON.stringify(TOOL_SCHEMAS[name])) as Parameters<typeof jsonSchema>[0]),
);

export const TOOL_DESCRIPTIONS: Record<ToolName, string> = {
  execute:
    'Run a shell command in your sandbox (a Linux container with its own limits and network policy) and get its exit code, stdout and stderr (long output is cut and marked truncated).',
  read_file: 'Read a text file from your sandbox.',
  write_file: 'Write a text file in your sandbox (parent directories are created).',
  list_files: 'List a directory of your sandbox (default /workspace).',
};

/** A tool call that did not run or failed before it produced a result; the model receives the message as the tool's error. */
export class ToolCallError extends Error {
  readonly status: 'error' | 'denied';
  constructor(status: 'error' | 'denied', message: string) {
    super(message);
    this.name = 'ToolCallError';
    this.status = status;
  }
}

/** Validates a tool input against its schema; the message names the field (as the API's 400s do). */
export function validateToolInput(name: ToolName, input: unknown): string | null {
  const issue = firstIssue(TOOL_CHECKS[name], input);
  return issue ? schemaError(issue).message : null;
}

/** Resolves a tool's path argument against /workspace; the sandbox's file access checks it further. */
export function sandboxPath(p: string, workdir: string): string {
  return p.startsWith('/') ? path.normalize(p) : path.join(workdir, p);
}

/** Cuts UTF-8 text to at most `maxBytes` bytes on a character boundary. */
export function capText(text: string, maxBytes: number): { text: string; cut: boolean } {
  if (Buffer.byteLength(text) <= maxBytes) return { text, cut: false };
  const buf = Buffer.from(text, 'utf8');
  let end = maxBytes;
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return { text: buf.subarray(0, end).toString('utf8'), cut: true };
}

/** What a tool implementation needs from the sandbox: run a command, move a file (the runtime's Executor and FileTransfer). */
export interface SandboxIo {
  execute(
    caller: Caller,
    sandboxId: string,
    req: { command: string | string[]; timeout?: number; workdir?: string; environment?: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<{ exitCode: number; stdout: string; stderr: string; durationMs: number; timedOut: boolean; truncated: boolean }>;
  readFile(caller: Caller, sandboxId: string, path: string): Promise<Buffer>;
  writeFile(caller: Caller, sandboxId: string, path: string, content: Readable): Promise<{ bytes: number }>;
}

/** Runs one validated call in a sandbox; returns what the model gets (JSON) and, for execute, its exit code. */
export type ToolImpl = (
  input: unknown,
  at: { caller: Caller; sandboxId: string; env: Record<string, string>; signal: AbortSignal | undefined },
) => Promise<{ result: Record<string, unknown>; exitCode: number | null }>;

/**
 * The tool implementations over a sandbox. `shape` turns raw output into what the model and the
 * events see: redacted, then cut to DIRECTOR_CHAT_TOOL_OUTPUT_MAX_BYTES per stream.
 */
export function toolImpls(
  io: SandboxIo,
  shape: (text: string, cutBefore: boolean) => { text: string; cut: boolean },
): Record<ToolName, ToolImpl> {
  return {
    async execute(raw, at) {
      const input = raw as ToolInput<'execute'>;
      const r = await io.execute(
        at.caller,
        at.sandboxId,
        { command: input.command, workdir: '/workspace', environment: at.env, ...(input.timeoutMs ? { timeout: input.timeoutMs } : {}) },
        at.signal,
      );
      const out = shape(r.stdout, r.truncated);
      const err = shape(r.stderr, r.truncated);
      return {
        result: {
          exitCode: r.exitCode,
          stdout: out.text,
          stderr: err.text,
          truncated: r.truncated || out.cut || err.cut,
          timedOut: r.timedOut,
        },
        exitCode: r.exitCode,
      };
    },
    async read_file(raw, at) {
      const p = sandboxPath((raw as ToolInput<'read_file'>).path, '/workspace');
      const content = await io.readFile(at.caller, at.sandboxId, p);
      if (content.includes(0)) return { result: { path: p, bytes: content.length, binary: true, content: '' }, exitCode: null };
      const text = shape(content.toString('utf8'), false);
      return { result: { path: p, bytes: content.length, content: text.text, truncated: text.cut }, exitCode: null };
    },
    async write_file(raw, at) {
      const input = raw as ToolInput<'write_file'>;
      const p = sandboxPath(input.path, '/workspace');
      const dir = path.dirname(p);
      const mk = await io.execute(at.caller, at.sandboxId, { command: ['mkdir', '-p', '--', dir] }, at.signal);
      if (mk.exitCode !== 0) throw new ToolCallError('error', `cannot create ${dir}: ${shape(mk.stderr, false).text.trim()}`);
      const { bytes } = await io.writeFile(at.caller, at.sandboxId, p, Readable.from([Buffer.from(input.content, 'utf8')]));
      return { result: { path: p, bytes }, exitCode: null };
    },
    async list_files(raw, at) {
      const p = sandboxPath((raw as ToolInput<'list_files'>).path ?? '/workspace', '/workspace');
      const r = await io.execute(at.caller, at.sandboxId, { command: ['ls', '-la', '--', p] }, at.signal);
      if (r.exitCode !== 0) throw new ToolCallError('error', `cannot list ${p}: ${shape(r.stderr, false).text.trim()}`);
      const listing = shape(r.stdout, r.truncated);
      return { result: { path: p, listing: listing.text, truncated: listing.cut }, exitCode: null };
    },
  };
}

/**
 * The AI SDK tool set for a turn: each tool's JSON schema (validated by TypeBox before `run` is
 * ever called; an invalid call reaches the model as a tool error) and `run`, which the turn
 * supplies (approval, sandbox, events).
 */
export function toolSet(
  names: readonly ToolName[],
  run: (name: ToolName, input: unknown, callId: string, signal?: AbortSignal) => Promise<unknown>,
): ToolSet {
  const set: Record<string, Tool> = {};
  for (const name of names) {
    set[name] = tool({
      description: TOOL_DESCRIPTIONS[name],
      inputSchema: jsonSchema<Record<string, unknown>>(TOOL_JSON[name], {
        validate: (value) => {
          const issue = validateToolInput(name, value);
          return issue ? { success: false, error: new Error(issue) } : { success: true, value: value as Record<string, unknown> };
        },
      }),
      execute: (input, opts) => run(name, input, opts.toolCallId, opts.abortSignal),
    });
  }
  return set;
}
