/**
 * Tar archives for `sandbox cp`: packing a local file or directory under a chosen root name, and
 * extracting a sandbox's archive into a local path. Extraction trusts nothing it receives (the
 * server already refuses links, devices and escaping names; this checks again): only regular
 * files and directories, no absolute or `..` names, no setuid bits.
 */
import { constants, createWriteStream, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { CliError } from './errors.ts';

export interface PackResult {
  tar: Uint8Array;
  files: number;
  bytes: number;
  /** Local entries left out (links, devices, sockets). */
  skipped: string[];
}

/** Packs `local` (a file or a directory tree) as entries named `root` and `root/...`. */
export async function packPath(local: string, root: string): Promise<PackResult> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
  })();
  const result = { files: 0, bytes: 0, skipped: [] as string[] };
  const add = (header: Partial<tar.Header> & { name: string }, content?: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry(header, content ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  const walk = async (p: string, name: string): Promise<void> => {
    const st = lstatSync(p);
    if (st.isDirectory()) {
      await add({ name: `${name}/`, type: 'directory', mode: st.mode & 0o777, mtime: st.mtime });
      for (const child of readdirSync(p).sort()) await walk(path.join(p, child), `${name}/${child}`);
    } else if (st.isFile()) {
      const content = readFileSync(p);
      await add({ name, type: 'file', mode: st.mode & 0o777, size: content.length, mtime: st.mtime }, content);
      result.files++;
      result.bytes += content.length;
    } else result.skipped.push(p);
  };
  await walk(local, root);
  pack.finalize();
  await collected;
  return { tar: new Uint8Array(Buffer.concat(chunks)), ...result };
}

/** An entry name as safe relative parts, or null when it is absolute or climbs out. */
export function safeParts(name: string): string[] | null {
  if (name.startsWith('/') || name.includes('\0')) return null;
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  return parts.length && !parts.includes('..') ? parts : null;
}

/**
 * Extracts an archive whose entries all sit under one root (`name` and `name/...`, as the files
 * API sends them) so that the root becomes `dest`.
 */
export async function extractTo(
  body: ReadableStream<Uint8Array>,
  dest: string,
): Promise<{ entries: number; files: number; bytes: number }> {
  const extract = tar.extract();
  const feeding = feed(body, extract);
  const result = { entries: 0, files: 0, bytes: 0 };
  let root: string | null = null;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const parts = safeParts(h.name);
      if (!parts) throw new CliError('UNSAFE_ARCHIVE', `refused archive entry ${JSON.stringify(h.name)}`);
      root ??= parts[0]!;
      result.entries++;
      if (parts[0] !== root) throw new CliError('UNSAFE_ARCHIVE', `archive entry ${JSON.stringify(h.name)} is outside ${root}/`);
      const target = path.join(dest, ...parts.slice(1));
      if (h.type === 'directory') {
        mkdirSync(target, { recursive: true, mode: 0o755 });
        entry.resume();
      } else if (h.type === 'file' || h.type === 'contiguous-file') {
        mkdirSync(path.dirname(target), { recursive: true });
        // Never through a link that happens to sit at the target.
        const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
        const fd = openSync(target, flags, h.mode & 0o777);
        await pipeline(entry as AsyncIterable<Uint8Array>, createWriteStream(target, { fd }));
        result.files++;
        result.bytes += h.size;
      } else throw new CliError('UNSAFE_ARCHIVE', `refused ${h.type} entry ${JSON.stringify(h.name)}`);
    }
  } catch (err) {
    extract.destroy();
    throw err;
  } finally {
    await feeding;
  }
  return result;
}

/** Writes the body into the parser, with backpressure; a failure destroys the parser, which the reader sees. */
async function feed(body: ReadableStream<Uint8Array>, extract: tar.Extract): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (extract.destroyed) return;
      if (done) break;
      if (!extract.write(value)) await new Promise<void>((resolve) => extract.once('drain', () => resolve()));
    }
    extract.end(null);
  } catch (err) {
    extract.destroy(err instanceof Error ? err : new Error(String(err)));
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

export const isDirectory = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};
