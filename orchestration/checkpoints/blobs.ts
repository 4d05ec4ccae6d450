/**
 * Content-addressed storage of checkpoint files: each distinct content once per workspace, named
 * by {@link contentKey} (the sha256 of the workspace and of the content), whatever refers to it.
 *
 * - **Small content** (at most {@link SMALL_BYTES}) is a row of `checkpoint_chunks` in the store,
 *   written in transactions (so it is as durable and as atomic as the checkpoint row that
 *   refers to it, which is committed after it). Workspaces are mostly small files, and a file each
 *   cost more here than reading them out of the sandbox: about 0.5 ms per file for the flush alone
 *   (up to 256 KiB: a 1 MB workspace's two 160 KiB files as files cost a third of its plain tar
 *   in flushes).
 * - **Larger content** is a file `blobs/<2 hex>/<key hex>` under the data dir (files 0600,
 *   directories 0700): written to `tmp/`, flushed, and renamed into place, so a name always holds
 *   complete content; its directory is flushed before the checkpoint that refers to it is
 *   committed.
 *
 * Which blobs are in use is the store's table `checkpoint_blobs`; a blob nothing refers to is
 * removed. While a capture or restore works with blobs that no committed checkpoint may refer to
 * yet (or any more), it pins them: a pinned blob is never removed, and the last unpin removes it
 * if nothing refers to it by then. Checks and removals run synchronously (no await between the
 * question "is it used?" and the removal), so a pin and a removal never interleave. Both are
 * asked for many blobs at once (one statement each), not one per blob. The blobs of a manifest
 * taken over whole (an unchanged mount) or of a checkpoint being restored are pinned as one
 * group, whatever their number: nothing is done per blob unless a removal asks about them.
 */
import { createHash, hash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Db } from '../../core/db.ts';

const DIGEST = /^[0-9a-f]{64}$/;
/** Content up to this size is stored in the store's table; larger content as a file. */
export const SMALL_BYTES = 256 * 1024;
/** Content up to this size has always been a row: SMALL_BYTES before it grew to 256 KiB. */
const ALWAYS_ROW_BYTES = 64 * 1024;
/** Small content is inserted in transactions of about this many bytes. */
const ROWS_PER_TX_BYTES = 1024 * 1024;
/** File writes in flight at once (the fs thread pool overlaps their flushes). */
const PARALLEL_WRITES = 16;

export const isDigest = (s: string): boolean => DIGEST.test(s);

export class BlobStore {
  readonly root: string;
  readonly #db: Db;
  readonly #blobs: string;
  readonly #tmp: string;
  readonly #pins = new Map<string, number>();
  /** Pinned groups (see {@link pinGroup}), by the array's identity, each with its count. */
  readonly #groups = new Map<readonly string[], number>();
  readonly #referenced: (digests: readonly string[]) => ReadonlySet<string>;

  /**
   * `root`: the checkpoints directory under the data dir; `referenced` answers which of the
   * digests a committed checkpoint uses (one question for many).
   */
  constructor(root: string, db: Db, referenced: (digests: readonly string[]) => ReadonlySet<string>) {
    this.root = root;
    this.#db = db;
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
    const pinned = this.#pinned();
    let removed = 0;
    for (const shard of readdirSync(this.#blobs)) {
      const dir = path.join(this.#blobs, shard);
      for (const name of readdirSync(dir)) {
        if (all.has(name) || pinned(name)) continue;
        rmSync(path.join(dir, name), { force: true });
        removed++;
      }
    }
    const rows = this.#db.sql.prepare('SELECT digest FROM checkpoint_chunks').all() as { digest: string }[];
    for (const { digest } of rows) {
      if (all.has(digest) || pinned(digest)) continue;
      this.#db.sql.prepare('DELETE FROM checkpoint_chunks WHERE digest = ?').run(digest);
      removed++;
    }
    return { removed };
  }

  pathOf(digest: string): string {
    if (!isDigest(digest)) throw new Error(`not a blob digest: ${digest.slice(0, 80)}`);
    return path.join(this.#blobs, digest.slice(0, 2), digest);
  }

  #chunk(digest: string): Buffer | null {
    const row = this.#db.sql.prepare('SELECT content FROM checkpoint_chunks WHERE digest = ?').get(digest) as
      { content: Uint8Array } | undefined;
    return row ? Buffer.from(row.content.buffer, row.content.byteOffset, row.content.byteLength) : null;
  }

  /**
   * The small contents of `digests` that are rows of the store, in one statement (digests stored
   * as files, or not at all, are absent from the answer).
   */
  readChunks(digests: readonly string[]): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    if (!digests.length) return out;
    const rows = this.#db.sql
      .prepare('SELECT digest, content FROM checkpoint_chunks WHERE digest IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify(digests)) as { digest: string; content: Uint8Array }[];
    for (const r of rows) out.set(r.digest, Buffer.from(r.content.buffer, r.content.byteOffset, r.content.byteLength));
    return out;
  }

  /**
   * Whether `digest`'s content is stored. `bytes`, when known, is its size: content of at most
   * {@link ALWAYS_ROW_BYTES} was only ever stored as a row (never a file), so no file is looked
   * for. (Content between that and {@link SMALL_BYTES} was a file before SMALL_BYTES grew, and
   * still is in a data dir written then.)
   */
  has(digest: string, bytes?: number): boolean {
    if (this.#db.sql.prepare('SELECT 1 FROM checkpoint_chunks WHERE digest = ?').get(digest) !== undefined) return true;
    return bytes !== undefined && bytes <= ALWAYS_ROW_BYTES ? false : existsSync(this.pathOf(digest));
  }

  /**
   * Which of the small contents (`[digest, bytes]`) are stored, in one statement; as {@link has}
   * for each (content over {@link ALWAYS_ROW_BYTES} may also be a file of an older data dir,
   * unless `rowsOnly`: keys of a workspace (`contentKey`) came after small content stopped being
   * files).
   */
  present(small: ReadonlyMap<string, number>, rowsOnly = false): Set<string> {
    const out = new Set<string>();
    if (!small.size) return out;
    const rows = this.#db.sql
      .prepare('SELECT digest FROM checkpoint_chunks WHERE digest IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify([...small.keys()])) as { digest: string }[];
    for (const r of rows) out.add(r.digest);
    if (!rowsOnly) for (const [d, bytes] of small) if (!out.has(d) && bytes > ALWAYS_ROW_BYTES && existsSync(this.pathOf(d))) out.add(d);
    return out;
  }

  /** Pins `digest` and says whether its blob is present (one synchronous step); `bytes` as for {@link has}. */
  pin(digest: string, bytes?: number): boolean {
    this.pinOnly(digest);
    return this.has(digest, bytes);
  }

  /**
   * Pins `digest` without looking for it: for a blob a committed checkpoint refers to (the
   * caller checked that checkpoint in the same synchronous step), which is present, since a
   * referenced blob is never removed. Saves a lookup per file on an unchanged workspace.
   */
  pinOnly(digest: string): void {
    this.#pins.set(digest, (this.#pins.get(digest) ?? 0) + 1);
  }

  /**
   * Pins every digest of `digests` at once, without looking for them, as {@link pinOnly} does
   * each (the caller checked, in the same synchronous step, that a committed checkpoint refers to
   * them all). The array is the group: {@link unpin} takes the same one back; it must not change.
   */
  pinGroup(digests: readonly string[]): void {
    this.#groups.set(digests, (this.#groups.get(digests) ?? 0) + 1);
  }

  /** Whether a digest is pinned, alone or in a group (the groups' digests gathered once per call of this). */
  #pinned(): (digest: string) => boolean {
    if (!this.#groups.size) return (d) => this.#pins.has(d);
    const grouped = new Set<string>();
    for (const g of this.#groups.keys()) for (const d of g) grouped.add(d);
    return (d) => this.#pins.has(d) || grouped.has(d);
  }

  /**
   * Drops one pin of each digest; a blob left unpinned and unreferenced is removed. `referenced`:
   * the caller knows a committed checkpoint refers to every one of them (checked in this same
   * synchronous step), so none can be unused and none is looked up.
   */
  unpin(digests: Iterable<string>, referenced = false, groups: readonly (readonly string[])[] = []): void {
    const free = new Set<string>();
    for (const d of digests) {
      const n = (this.#pins.get(d) ?? 1) - 1;
      if (n > 0) this.#pins.set(d, n);
      else {
        this.#pins.delete(d);
        free.add(d);
      }
    }
    // And one pin of each group (pinGroup); a group's last unpin frees its digests.
    for (const g of groups) {
      const n = (this.#groups.get(g) ?? 1) - 1;
      if (n > 0) this.#groups.set(g, n);
      else {
        this.#groups.delete(g);
        for (const d of g) free.add(d);
      }
    }
    // Those still pinned otherwise (alone or in another group) are left by the removal itself.
    if (!referenced) this.#removeUnused([...free]);
  }

  /** Removes blobs no checkpoint refers to any more, unless pinned (after a delete). Synchronous. */
  collect(digests: Iterable<string>): number {
    return this.#removeUnused([...new Set(digests)]);
  }

  /** Removes those of `digests` (distinct) that nothing pins and no checkpoint refers to: one question, one DELETE. */
  #removeUnused(distinct: string[]): number {
    if (!distinct.length) return 0;
    const pinned = this.#pinned();
    const digests = distinct.filter((d) => !pinned(d));
    if (!digests.length) return 0;
    for (const d of digests) if (!isDigest(d)) throw new Error(`not a blob digest: ${d.slice(0, 80)}`);
    const used = this.#referenced(digests);
    const unused = used.size ? digests.filter((d) => !used.has(d)) : digests;
    if (!unused.length) return 0;
    const rows = this.#db.sql
      .prepare('DELETE FROM checkpoint_chunks WHERE digest IN (SELECT value FROM json_each(?)) RETURNING digest')
      .all(JSON.stringify(unused)) as { digest: string }[];
    // Content that was not a row is a file (or already gone). A power loss must not undo the
    // commit that made it unused (a checkpoint's delete) once its file is gone: that commit is
    // made durable first (rows go with their commit, whichever way).
    const wereRows = new Set(rows.map((r) => r.digest));
    const files = unused.filter((d) => !wereRows.has(d));
    if (files.length) this.#db.syncWal();
    for (const d of files) rmSync(this.pathOf(d), { force: true });
    return unused.length;
  }

  /** Inserts small contents (one transaction, or the caller's); content already there stays as it is. */
  insertChunks(rows: Iterable<[string, Buffer]>): void {
    const stmt = this.#db.sql.prepare('INSERT OR IGNORE INTO checkpoint_chunks (digest, content) VALUES (?, ?)');
    this.#db.tx(() => {
      for (const [d, buf] of rows) stmt.run(d, buf);
    });
  }

  /** A blob's content as a stream. */
  open(digest: string): Readable {
    const small = this.#chunk(digest);
    return small ? Readable.from([small]) : createReadStream(this.pathOf(digest));
  }

  async read(digest: string): Promise<Buffer> {
    return this.#chunk(digest) ?? fs.readFile(this.pathOf(digest));
  }

  /**
   * A set of writes and pins belonging to one capture or restore. `namespace` (a capture's
   * workspace): what the batch stores is keyed by {@link contentKey} in it, so content is shared
   * only within it. Without one (a restore's pins; tests), by the content's sha256 alone: never
   * for content a tenant supplies (the plain sha256 of some content is another's key).
   */
  batch(namespace: string | null = null): BlobBatch {
    return new BlobBatch(this, this.#tmp, namespace);
  }
}

/**
 * The key content is stored under in a workspace: the sha256 of the workspace id and the
 * content's sha256. Content is shared between the checkpoints of one workspace only. Shared
 * across workspaces, what a checkpoint stores anew (`storedBytes`), and how long it takes, would
 * tell a tenant whether another one holds a given file (a guessed configuration, a known secret).
 */
export const contentKey = (namespace: string, contentSha256: string): string => hash('sha256', `${namespace}\n${contentSha256}`, 'hex');

/**
 * The blobs one capture writes and the blobs it reuses, all pinned until {@link release}. Commit
 * the checkpoint that refers to them after {@link flush} and before {@link release}; releasing
 * without a commit removes what the batch created.
 */
export class BlobBatch {
  readonly #store: BlobStore;
  readonly #tmp: string;
  readonly #pinned: string[] = [];
  /** Groups pinned whole (see {@link reuseReferencedGroup}). */
  readonly #groups: (readonly string[])[] = [];
  readonly #dirs = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Digests this batch is writing (the same content twice in one capture is written once). */
  readonly #writing = new Set<string>();
  /** Small contents not inserted yet. */
  #rows = new Map<string, Buffer>();
  #rowBytes = 0;
  /**
   * Small contents put (and pinned) but not yet looked for in the store, with their sizes: looked
   * for together, in one statement, by {@link newBytes} and before they are inserted.
   */
  #unchecked = new Map<string, number>();
  #newBytes = 0;
  #error: Error | null = null;
  #released = false;
  readonly #namespace: string | null;

  constructor(store: BlobStore, tmp: string, namespace: string | null) {
    this.#store = store;
    this.#tmp = tmp;
    this.#namespace = namespace;
  }

  /** The key of content whose sha256 is `sha` (see {@link contentKey}). */
  #key(sha: string): string {
    return this.#namespace === null ? sha : contentKey(this.#namespace, sha);
  }

  /**
   * Bytes of content this batch stored anew (or will, with {@link insertPending}). Reading it
   * looks up the small contents put since the last read (one statement for all of them).
   */
  get newBytes(): number {
    this.#check();
    return this.#newBytes;
  }

  /** Every digest pinned by this batch (each once per pin; a group's, each once per digest in it). */
  get digests(): readonly string[] {
    return this.#groups.length ? [...this.#pinned, ...this.#groups.flat()] : this.#pinned;
  }

  /** Pins an existing blob for reuse; false when it is gone (the caller then reads the content again). */
  reuse(digest: string): boolean {
    this.#pinned.push(digest);
    return this.#store.pin(digest);
  }

  /**
   * Pins a blob that a committed checkpoint refers to, checked by the caller in the same
   * synchronous step (see {@link BlobStore.pinOnly}): it is present and stays while pinned.
   */
  reuseReferenced(digest: string): void {
    this.#pinned.push(digest);
    this.#store.pinOnly(digest);
  }

  /**
   * {@link reuseReferenced} of every digest of `digests` as one group (BlobStore.pinGroup): the
   * blobs of a manifest taken over whole, or of a checkpoint being restored. `digests` must not
   * change while the batch holds it.
   */
  reuseReferencedGroup(digests: readonly string[]): void {
    this.#groups.push(digests);
    this.#store.pinGroup(digests);
  }

  /** Stores `buf` unless present; a file write may still be in flight when this returns (see {@link flush}). */
  async putBuffer(buf: Buffer): Promise<string> {
    if (buf.length <= SMALL_BYTES) return this.putSmall(buf);
    const digest = this.#key(hash('sha256', buf, 'hex'));
    if (!this.#claim(digest, buf.length)) return digest;
    await this.#limit();
    this.#track(this.#write(digest, async (fh) => void (await fh.writeFile(buf))));
    return digest;
  }

  /**
   * Stores small content (at most {@link SMALL_BYTES}) unless present: synchronous, a row of the
   * store written with the others (the batch keeps `buf` until then: it must not change).
   */
  putSmall(buf: Buffer): string {
    if (buf.length > SMALL_BYTES) throw new RangeError(`putSmall takes at most ${SMALL_BYTES} bytes, got ${buf.length}`);
    const digest = this.#key(hash('sha256', buf, 'hex')); // one call, no Hash object: most contents are small files
    // Pinned now (so content present now stays), looked for later with the others (#check).
    this.#pinned.push(digest);
    this.#store.pinOnly(digest);
    if (this.#writing.has(digest)) return digest;
    this.#writing.add(digest);
    this.#unchecked.set(digest, buf.length);
    this.#rows.set(digest, buf);
    this.#rowBytes += buf.length;
    if (this.#rowBytes >= ROWS_PER_TX_BYTES) this.#insertRows();
    return digest;
  }

  /** Stores streamed content of `size` bytes (hashing it on the way); small content goes through {@link putSmall}. */
  async putStream(src: AsyncIterable<Buffer>, size: number): Promise<string> {
    if (size <= SMALL_BYTES) {
      const chunks: Buffer[] = [];
      for await (const c of src) chunks.push(c);
      return this.putSmall(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    }
    const tmp = path.join(this.#tmp, randomBytes(12).toString('hex'));
    const hasher = createHash('sha256');
    const fh = await fs.open(tmp, 'wx', 0o600);
    let bytes = 0;
    try {
      for await (const c of src) {
        hasher.update(c);
        bytes += c.length;
        for (let off = 0; off < c.length;) off += (await fh.write(c, off)).bytesWritten;
      }
    } catch (err) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const digest = this.#key(hasher.digest('hex'));
    if (!this.#claim(digest, bytes)) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      return digest;
    }
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

  /**
   * Waits for the file writes, then flushes the directories they went into. Throws the first
   * write error. Small contents not inserted yet stay pending: {@link insertPending} writes them
   * in the transaction that commits the checkpoint (one commit instead of two).
   */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
    if (this.#error) throw this.#error;
    await Promise.all([...this.#dirs].map((d) => syncDir(d)));
    if (this.#dirs.size) await syncDir(path.dirname([...this.#dirs][0]!));
  }

  /**
   * Drops this batch's pins (after its checkpoint was committed, or to abandon it: unreferenced
   * blobs go). `committed`, when given, answers whether the checkpoint that refers to every
   * digest of this batch exists: asked in the same synchronous step as the unpin, and when it
   * does, no digest is looked up (none can have become unused).
   */
  async release(committed?: () => boolean): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#rows = new Map();
    this.#unchecked = new Map();
    await Promise.allSettled([...this.#inFlight]);
    const referenced = committed?.() === true;
    this.#store.unpin(this.#pinned, referenced, this.#groups);
  }

  /**
   * Inserts the small contents not inserted yet; call it inside the transaction that commits the
   * checkpoint referring to them (their rows commit with it, or not at all).
   */
  insertPending(): void {
    this.#insertRows();
  }

  /** Pins `digest`; true when this batch must store it (not present, not being stored by this batch). */
  #claim(digest: string, bytes: number): boolean {
    this.#pinned.push(digest);
    if (this.#store.pin(digest, bytes) || this.#writing.has(digest)) return false;
    this.#writing.add(digest);
    this.#newBytes += bytes;
    return true;
  }

  /** Looks up the small contents not looked for yet: those present are not inserted again nor counted as new. */
  #check(): void {
    if (!this.#unchecked.size) return;
    const present = this.#store.present(this.#unchecked, this.#namespace !== null);
    for (const [d, bytes] of this.#unchecked) {
      if (present.has(d)) {
        if (this.#rows.delete(d)) this.#rowBytes -= bytes;
      } else this.#newBytes += bytes;
    }
    this.#unchecked = new Map();
  }

  #insertRows(): void {
    this.#check();
    if (!this.#rows.size) return;
    this.#store.insertChunks(this.#rows);
    this.#rows = new Map();
    this.#rowBytes = 0;
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
