/**
 * The apply step: the only code that runs `nft`. No shell is involved, and a failure carries
 * nft's stderr. Documents are passed as a file in a private temporary directory, not as `-f -`:
 * nft opens `/dev/stdin` by path, which fails (ENXIO) on the socketpair Node gives a child's
 * stdin, and a command-line argument is capped at 128 KiB.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DirectorError } from '../core/errors.ts';
import type { NftDocument } from './json.ts';
import { encodeDocument, Unencodable } from './netlink-encode.ts';
import { NetlinkError, type NetlinkHelpers } from './netlink-helpers.ts';
import { inNetns } from './netns.ts';
import { renderDocument, Unrenderable } from './text.ts';

export interface NftOptions {
  /** Path of the nft binary (default `nft`, looked up in PATH). */
  nftPath?: string;
  /** Kill nft after this long (default 30 000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Run nft inside this named network namespace (`ip netns exec`); tests use it to filter real traffic away from the host's own rules. */
  netns?: string;
  /**
   * How documents are applied. `auto`: straight to the kernel over netlink where `netlink-encode.ts`
   * encodes the document (policy generations) and {@link netlink} can carry it, else through `nft`
   * in its own syntax, else as JSON. `text` and `json` force `nft` with that input (tests and
   * benchmarks compare the three).
   */
  format?: 'auto' | 'text' | 'json';
  /** The helper processes that carry netlink batches; their owner closes them. Without them, everything goes through `nft`. */
  netlink?: NetlinkHelpers;
  /** Path of the perl that carries netlink batches (default `perl`, looked up in PATH). */
  perlPath?: string;
  /** Told when a document the netlink path encoded went through `nft` instead, and why. */
  onNetlinkFallback?: (reason: string) => void;
}

export class NftError extends DirectorError {
  readonly stderr: string;
  readonly exitCode: number | null;
  constructor(args: readonly string[], exitCode: number | null, stderr: string, cause?: unknown) {
    const firstLine = stderr.split('\n').find((l) => l.trim()) ?? 'no output';
    super('INTERNAL_ERROR', `nft ${args.join(' ')} failed (exit ${exitCode ?? 'signal'}): ${firstLine}`, { exitCode, stderr }, { cause });
    this.name = 'NftError';
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/** Runs nft with `args`; resolves with stdout, rejects with an {@link NftError}. */
export function runNft(args: readonly string[], opts: NftOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const signals = [AbortSignal.timeout(opts.timeoutMs ?? 30_000), ...(opts.signal ? [opts.signal] : [])];
    const [cmd, argv] = inNetns(opts.netns, opts.nftPath ?? 'nft', args);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], signal: AbortSignal.any(signals) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => reject(new NftError(args, null, Buffer.concat(err).toString() || e.message, e)));
    child.on('close', (code) => {
      const stderr = Buffer.concat(err).toString();
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new NftError(args, code, stderr));
    });
  });
}

async function runDocument(flags: string[], doc: NftDocument, opts?: NftOptions): Promise<void> {
  if (doc.nftables.length === 0) return;
  // nft's own syntax where the document has only shapes the renderer covers (it parses faster),
  // JSON otherwise; the two are the same transaction.
  let text: string | null = null;
  if (opts?.format !== 'json') {
    try {
      text = renderDocument(doc);
    } catch (err) {
      if (!(err instanceof Unrenderable)) throw err;
    }
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'director-nft-'));
  try {
    const file = path.join(dir, text === null ? 'doc.json' : 'doc.nft');
    await writeFile(file, text ?? JSON.stringify(doc), { mode: 0o600 });
    await runNft([...flags, ...(text === null ? ['-j'] : []), '-f', file], opts);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Applies a document as one atomic transaction: over netlink where it can be encoded and
 * helpers are given (see {@link NftOptions.format}), otherwise `nft -f` (or `nft -j -f` for JSON). When the kernel
 * refuses a netlink batch, nothing was applied and the same document goes through `nft`, which
 * either applies it or explains the refusal in its own words; the same holds when the netlink
 * helper cannot be used.
 */
export async function applyDocument(doc: NftDocument, opts?: NftOptions): Promise<void> {
  if (doc.nftables.length === 0) return;
  if ((opts?.format ?? 'auto') === 'auto' && opts?.netlink) {
    let batch: Buffer | null = null;
    try {
      batch = encodeDocument(doc);
    } catch (err) {
      if (!(err instanceof Unencodable)) throw err;
    }
    if (batch) {
      try {
        await opts.netlink.send(batch, { netns: opts.netns, perlPath: opts.perlPath, timeoutMs: opts.timeoutMs });
        return;
      } catch (err) {
        if (!(err instanceof NetlinkError)) throw err;
        opts.onNetlinkFallback?.(err.message);
      }
    }
  }
  await runDocument([], doc, opts);
}

/** Checks a document against the kernel without applying it (`nft -c`; needs root, changes nothing). */
export async function checkDocument(doc: NftDocument, opts?: NftOptions): Promise<void> {
  await runDocument(['-c'], doc, opts);
}

/** `nft -j list table inet <table>`, parsed; feed it to `parseTable`. */
export async function listTable(table: string, opts?: NftOptions): Promise<unknown> {
  return JSON.parse(await runNft(['-j', 'list', 'table', 'inet', table], opts)) as unknown;
}

/** Whether Director's table exists. */
export async function tableExists(table: string, opts?: NftOptions): Promise<boolean> {
  const listing = JSON.parse(await runNft(['-j', 'list', 'tables', 'inet'], opts)) as { nftables?: { table?: { name?: string } }[] };
  return (listing.nftables ?? []).some((i) => i.table?.name === table);
}
