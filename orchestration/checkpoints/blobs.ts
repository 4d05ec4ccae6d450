/**
 * Content-addressed storage of checkpoint files under the data dir: `blobs/<2 hex>/<sha256 hex>`
 * (files 0600, directories 0700). A blob is written to `tmp/`, flushed, and renamed into place,
 * so a name always holds complete content; its directory is flushed before the checkpoint that
 * refers to it is committed. The same content is stored once whatever refers to it.
 *
 * Which blobs are in use is the store's table `checkpoint_blobs`; a blob nothing refers to is
 * removed. While a capture or restore works with blobs that no committed checkpoint may refer to
 * yet (or any more), it pins them: a pinned blob is never removed, and the last unpin removes it
 * if nothing refers to it by then. Checks and removals run synchronously (no await between the
 * question "is it used?" and the unlink), so a pin and a removal never interleave.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

const DIGEST = /^[0-9a-f]{64}$/;
/** Content up to this size is hashed in memory and written only when new; larger content streams to a temp file. */
const IN_MEMORY_BYTES = 256 * 1024;
/** Blob writes in flight at once (the fs thread pool overlaps their fsyncs). */
const PARALLEL_WRITES = 16;

export const isDigest = (s: string): boolean => DIGEST.test(s);

export class BlobStore {
  readonly root: string;
  readonly #blobs: string;
  readonly #tmp: string;
  readonly #pins = new Map<string, number>();
  readonly #referenced: (digest: string) => boolean;

  /** `root`: the checkpoints directory under the data dir; `referenced` asks the store whether a committed checkpoint uses a blob. */
  constructor(root: string, referenced: (digest: string) => boolean) {
    this.root = root;
    this.#blobs = path.join(root, 'blobs');
    this.#tmp = path.join(root, 'tmp');
    this.#referenced = referenced;
  }

  /**
   * Creates the directories, removes temp files a crash left, and removes every blob that no
   * checkpoint refers to (a capture cut short by a crash). `all` lists the referenced digests.
   */
  async start(all: ReadonlySet<string>): Promise<{ removed: number }> {
    mkdirSync(this.#blobs, { recursive: true, mode: 0o700 });
    rmSync(this.#tmp, { recursive: true, force: true });
    mkdirSync(this.#tmp, { mode: 0o700 });
    let removed = 0;
    for (const shard of readdirSync(this.#blobs)) {
      const dir = path.join(this.#blobs, shard);
      for (const name of readdirSync(dir)) {
        if (all.has(name) || this.#pins.has(name)) continue;
        rmSync(path.join(dir, name), { force: true });
        removed++;
      }
    }
    return { removed };
  }

  pathOf(digest: string): string {
    if (!isDigest(digest)) throw new Error(`not a blob digest: ${digest.slice(0, 80)}`);
    return path.join(this.#blobs, digest.slice(0, 2), digest);
  }

  /** Pins `digest` and says whether its blob is present (one synchronous step). */
  pin(digest: string): boolean {
    this.#pins.set(digest, (this.#pins.get(digest) ?? 0) + 1);
    return existsSync(this.pathOf(digest));
  }

  /** Drops one pin of each digest; a blob left unpinned and unreferenced is removed. */
  unpin(digests: Iterable<string>): void {
    for (const d of digests) {
      const n = (this.#pins.get(d) ?? 1) - 1;
      if (n > 0) {
        this.#pins.set(d, n);
        continue;
      }
      this.#pins.delete(d);
      if (!this.#referenced(d)) rmSync(this.pathOf(d), { force: true });
    }
  }

  /** Removes blobs no checkpoint refers to any more, unless pinned (after a delete). Synchronous. */
  collect(digests: Iterable<string>): number {
    let n = 0;
    for (const d of digests) {
      if (this.#pins.has(d) || this.#referenced(d)) continue;
      rmSync(this.pathOf(d), { force: true });
      n++;
    }
    return n;
  }

  isPinned(digest: string): boolean {
    return this.#pins.has(digest);
  }

  /** A blob's content as a stream. */
  open(digest: string): Readable {
    return createReadStream(this.pathOf(digest));
  }

  read(digest: string): Promise<Buffer> {
    return fs.readFile(this.pathOf(digest));
  }

  /** A set of writes and pins belonging to one capture or restore. */
  batch(): BlobBatch {
    return new BlobBatch(this, this.#tmp);
  }
}

/**
 * The blobs one capture writes and the blobs it reuses, all pinned until {@link release}. Commit
 * the checkpoint that refers to them after {@link flush} and before {@link release}; releasing
 * without a commit removes what the batch created.
 */
export class BlobBatch {
  readonly #store: BlobStore;
  readonly #tmp: string;
  readonly #pinned: string[] = [];
  readonly #dirs = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Digests this batch is writing (the same content twice in one capture is written once). */
  readonly #writing = new Set<string>();
  #error: Error | null = null;
  #released = false;
  /** Bytes of content this batch stored anew. */
  newBytes = 0;

  constructor(store: BlobStore, tmp: string) {
    this.#store = store;
    this.#tmp = tmp;
  }

  /** Every digest pinned by this batch (each once per pin). */
  get digests(): readonly string[] {
    return this.#pinned;
  }

  /** Pins an existing blob for reuse; false when it is gone (the caller then reads the content again). */
  reuse(digest: string): boolean {
    this.#pinned.push(digest);
    return this.#store.pin(digest);
  }

  /** Stores `buf` unless present; the write may still be in flight when this returns (see {@link flush}). */
  async putBuffer(buf: Buffer): Promise<string> {
    const digest = createHash('sha256').update(buf).digest('hex');
    this.#pinned.push(digest);
    if (this.#store.pin(digest) || this.#writing.has(digest)) return digest;
    this.#writing.add(digest);
    this.newBytes += buf.length;
    await this.#limit();
    this.#track(this.#write(digest, async (fh) => void (await fh.writeFile(buf))));
    return digest;
  }

  /** Stores streamed content of `size` bytes (hashing it on the way); small content goes through {@link putBuffer}. */
  async putStream(src: AsyncIterable<Buffer>, size: number): Promise<string> {
    if (size <= IN_MEMORY_BYTES) {
      const chunks: Buffer[] = [];
      for await (const c of src) chunks.push(c);
      return this.putBuffer(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    }
    const tmp = path.join(this.#tmp, randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    const fh = await fs.open(tmp, 'wx', 0o600);
    let bytes = 0;
    try {
      for await (const c of src) {
        hash.update(c);
        bytes += c.length;
        for (let off = 0; off < c.length;) off += (await fh.write(c, off)).bytesWritten;
      }
    } catch (err) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const digest = hash.digest('hex');
    this.#pinned.push(digest);
    if (this.#store.pin(digest) || this.#writing.has(digest)) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      return digest;
    }
    this.#writing.add(digest);
    this.newBytes += bytes;
    this.#track(
      (async () => {
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
        await this.#place(tmp, digest);
      })().catch(async (err: unknown) => {
        await fs.rm(tmp, { force: true });
        throw err;
      }),
    );
    return digest;
  }

  /** Waits for the writes, then flushes the directories they went into. Throws the first write error. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
    if (this.#error) throw this.#error;
    await Promise.all([...this.#dirs].map((d) => syncDir(d)));
    if (this.#dirs.size) await syncDir(path.dirname([...this.#dirs][0]!));
  }

  /** Drops this batch's pins (after its checkpoint was committed, or to abandon it: unreferenced blobs go). */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    await Promise.allSettled([...this.#inFlight]);
    this.#store.unpin(this.#pinned);
  }

  async #limit(): Promise<void> {
    while (this.#inFlight.size >= PARALLEL_WRITES) await Promise.race(this.#inFlight);
    if (this.#error) throw this.#error;
  }

  #track(p: Promise<void>): void {
    const tracked: Promise<void> = p.then(
      () => void this.#inFlight.delete(tracked),
      (err: unknown) => {
        this.#inFlight.delete(tracked);
        this.#error ??= err instanceof Error ? err : new Error(String(err));
      },
    );
    this.#inFlight.add(tracked);
  }

  async #write(digest: string, fill: (fh: fs.FileHandle) => Promise<void>): Promise<void> {
    const tmp = path.join(this.#tmp, randomBytes(12).toString('hex'));
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fill(fh);
      await fh.datasync();
    } catch (err) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await this.#place(tmp, digest);
  }

  async #place(tmp: string, digest: string): Promise<void> {
    const final = this.#store.pathOf(digest);
    const dir = path.dirname(final);
    if (!this.#dirs.has(dir)) {
      await fs.mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      this.#dirs.add(dir);
    }
    // Another capture may have placed the same content meanwhile: replacing it is harmless.
    await fs.rename(tmp, final);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
