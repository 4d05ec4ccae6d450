/**
 * Reads the small contents a restore sends in batches: one `SELECT ... WHERE digest IN (...)` per
 * run of up to {@link BATCH_FILES} files or {@link BATCH_BYTES} bytes instead of one per file
 * (a 1 MB workspace of 242 files asked the store 242 times).
 *
 * The files are known in the order the restore sends them (its plan); the batches are fixed runs
 * of that order, so every position belongs to exactly one batch whatever order positions are
 * asked in. A content that appears several times (files with the same content) is fetched once
 * per batch that holds it and handed to each of its positions; a batch's contents are dropped as
 * soon as every position of it was read. A digest that is not a row (content stored as a file)
 * is read from its file.
 */
import type { BlobStore } from './blobs.ts';

/** Files per batch (one SELECT). */
export const BATCH_FILES = 256;
/** Content bytes per batch (a batch holds at least one file, whatever its size). */
export const BATCH_BYTES = 4 * 1024 * 1024;

export interface BatchItem {
  digest: string;
  /** Content bytes (as recorded). */
  size: number;
}

interface Batch {
  /** Positions [start, end) of the items. */
  start: number;
  end: number;
  /** Loaded contents, by digest; null when not loaded (yet, or any more). */
  contents: Map<string, Buffer> | null;
  /** Positions of the batch not read yet. */
  unread: number;
}

export class BatchedReader {
  readonly #blobs: Pick<BlobStore, 'readChunks' | 'read'>;
  readonly #items: readonly BatchItem[];
  readonly #batchOf: Uint32Array;
  readonly #batches: Batch[] = [];
  readonly #read: Uint8Array;

  constructor(
    blobs: Pick<BlobStore, 'readChunks' | 'read'>,
    items: readonly BatchItem[],
    limits: { files: number; bytes: number } = { files: BATCH_FILES, bytes: BATCH_BYTES },
  ) {
    this.#blobs = blobs;
    this.#items = items;
    this.#batchOf = new Uint32Array(items.length);
    this.#read = new Uint8Array(items.length);
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < items.length; i++) {
      const size = items[i]!.size;
      if (i > start && (i - start >= limits.files || bytes + size > limits.bytes)) {
        this.#batches.push({ start, end: i, contents: null, unread: i - start });
        start = i;
        bytes = 0;
      }
      bytes += size;
      this.#batchOf[i] = this.#batches.length;
    }
    if (items.length > start) this.#batches.push({ start, end: items.length, contents: null, unread: items.length - start });
  }

  /** Batches (SELECTs) the items fall into. */
  get batches(): number {
    return this.#batches.length;
  }

  /** The content of item `i`: its batch is fetched on the first read of any of its positions. */
  async read(i: number): Promise<Buffer> {
    const item = this.#items[i];
    if (!item) throw new RangeError(`no item ${i} of ${this.#items.length}`);
    const b = this.#batches[this.#batchOf[i]!]!;
    const contents = b.contents ?? this.#load(b);
    const buf = contents.get(item.digest);
    if (!this.#read[i]) {
      this.#read[i] = 1;
      if (--b.unread === 0) b.contents = null;
    }
    return buf ?? this.#blobs.read(item.digest);
  }

  #load(b: Batch): Map<string, Buffer> {
    const digests = new Set<string>();
    for (let i = b.start; i < b.end; i++) digests.add(this.#items[i]!.digest);
    const contents = this.#blobs.readChunks([...digests]);
    // Kept only while positions of the batch are still to be read (a re-read of a read position reloads it).
    if (b.unread > 0) b.contents = contents;
    return contents;
  }
}
