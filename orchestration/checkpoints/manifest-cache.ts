/**
 * Parsed manifests kept in memory, by digest, so a session's next checkpoint (and a restore of a
 * recent one) does not read and parse its previous manifest again: for a mount of 2,000 files
 * that is a 300 KB JSON document per capture. A manifest is content-addressed and never changes
 * once stored, so an entry can never be stale; the cache is bounded by the manifests' stored
 * sizes and drops the least recently used first. Entries are frozen: a caller that tried to
 * change a shared manifest would throw instead of corrupting the next capture. Beside a manifest
 * the cache keeps the listing entries it was made from, when MountSync kept that listing: see
 * `listedFrom` (not counted here: one listing per manifest, of about the manifest's own size).
 */
import type { ListedEntry } from '../../runtime/sandbox/tree-listing.ts';
import { lastChangeS, parseManifest, summarize, type Manifest, type MountSummary } from './manifest.ts';

/**
 * What a capture that takes a kept manifest whole asks of it, computed once as the manifest is
 * kept (the same answers for as long as it is kept: a manifest never changes).
 */
export interface ManifestFacts {
  readonly summary: Readonly<MountSummary>;
  /** {@link lastChangeS}: settled (settledAt) for a listing time after the second after it. */
  readonly lastChangeS: number;
  /**
   * The distinct digests of its files, sorted (a checkpoint's set of digests is sorted before it
   * is hashed: already in order, that costs next to nothing).
   */
  readonly fileDigests: readonly string[];
}

interface Kept {
  manifest: Manifest;
  bytes: number;
  listedFrom: readonly ListedEntry[] | null;
  facts: ManifestFacts;
}

/** Stored (JSON) bytes of the manifests kept; the objects take a few times that. */
export const MANIFEST_CACHE_BYTES = 8 * 1024 * 1024;

export class ManifestCache {
  readonly #maxBytes: number;
  readonly #byDigest = new Map<string, Kept>();
  #bytes = 0;

  constructor(maxBytes = MANIFEST_CACHE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held (stored sizes). */
  get bytes(): number {
    return this.#bytes;
  }

  /** The manifest stored under `digest`: from memory, or `read` and parsed (and kept). */
  async get(digest: string, read: (digest: string) => Promise<Buffer>): Promise<Manifest> {
    const hit = this.#byDigest.get(digest);
    if (hit) {
      // Most recently used last.
      this.#byDigest.delete(digest);
      this.#byDigest.set(digest, hit);
      return hit.manifest;
    }
    const buf = await read(digest);
    return this.put(digest, parseManifest(buf), buf.length);
  }

  /**
   * The listing entries the manifest under `digest` was last made from, when a capture said so
   * and it is still kept: compared by identity (MountSync hands the same array for the same lines).
   */
  listedFrom(digest: string): readonly ListedEntry[] | null {
    return this.#byDigest.get(digest)?.listedFrom ?? null;
  }

  /**
   * {@link ManifestFacts} of the manifest kept under `digest` (null when it is not kept): computed
   * as it is kept (by the capture that made it, or as it is read back), not by the capture that
   * takes it whole.
   */
  facts(digest: string): ManifestFacts | null {
    return this.#byDigest.get(digest)?.facts ?? null;
  }

  /** Keeps `manifest` (stored as `bytes` bytes under `digest`), frozen, made from `listedFrom` when given; returns it. */
  put(digest: string, manifest: Manifest, bytes: number, listedFrom: readonly ListedEntry[] | null = null): Manifest {
    freeze(manifest);
    if (bytes > this.#maxBytes) return manifest;
    const old = this.#byDigest.get(digest);
    if (old) {
      this.#byDigest.delete(digest);
      this.#bytes -= old.bytes;
    }
    this.#byDigest.set(digest, { manifest, bytes, listedFrom, facts: old?.manifest === manifest ? old.facts : factsOf(manifest) });
    this.#bytes += bytes;
    for (const [d, e] of this.#byDigest) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#byDigest.delete(d);
      this.#bytes -= e.bytes;
    }
    return manifest;
  }
}

function factsOf(m: Manifest): ManifestFacts {
  return Object.freeze({
    summary: Object.freeze(summarize(m)),
    lastChangeS: lastChangeS(m),
    fileDigests: Object.freeze([...new Set(m.entries.flatMap((e) => (e.type === 'file' ? [e.digest!] : [])))].sort()),
  });
}

function freeze(m: Manifest): void {
  if (Object.isFrozen(m)) return;
  for (const e of m.entries) {
    if (e.stat) Object.freeze(e.stat);
    Object.freeze(e);
  }
  for (const s of m.skipped) Object.freeze(s);
  Object.freeze(m.entries);
  Object.freeze(m.skipped);
  Object.freeze(m);
}
