/**
 * The kernel's deny log as structured records. Director's nft rules log drops with the prefix
 * `dir:<short>:<tag>: ` (and audit mode's would-be drops with `dira:`, see `netfilter/names.ts`);
 * the kernel writes them, with netfilter's `IN=… OUT=… SRC=… DST=… PROTO=…` fields, to the
 * kernel log, which `/dev/kmsg` hands out one record per `read()`.
 *
 * Reading: `/dev/kmsg` is opened with O_NONBLOCK and drained with the async `fs.read` until
 * EAGAIN, then polled on a short timer. A blocking read would hold a libuv threadpool thread
 * until the next kernel message, and closing the FileHandle does not interrupt it (Node's
 * `FileHandle.close()` waits for the pending read, so `stop()` would hang until someone logs).
 */
import { constants as fsConstants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock, type Clock } from '../../core/clock.ts';
import { parseLogLine, type ParsedTag } from '../../netfilter/names.ts';

/** One `/dev/kmsg` record: sequence number, microseconds since boot, the first message line. */
export interface KmsgRecord {
  seq: number;
  usec: number;
  message: string;
}

/**
 * Parses a raw `/dev/kmsg` record, `<prio>,<seq>,<usec>,<flags>[,…];<message>\n[ KEY=value\n]…`.
 * Only the message's first line is kept (continuation lines are the record's dictionary).
 */
export function parseKmsgRecord(raw: string): KmsgRecord | null {
  const semi = raw.indexOf(';');
  if (semi < 0) return null;
  const m = /^\d+,(\d+),(\d+),/.exec(raw.slice(0, semi + 1));
  if (!m) return null;
  const nl = raw.indexOf('\n', semi + 1);
  return { seq: Number(m[1]), usec: Number(m[2]), message: raw.slice(semi + 1, nl < 0 ? undefined : nl) };
}

export type DenyProto = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | (string & {});

/** A packet a Director rule dropped (or, `audit`, would have dropped). */
export interface DenyRecord {
  /** `dira:` prefix: audit mode, the packet was not dropped. */
  audit: boolean;
  /** The network's short name (`shortName(networkId)`). */
  short: string;
  tag: ParsedTag;
  /** The tag as logged (`o2`, `o.default`). */
  rawTag: string;
  /** Input interface, empty for locally generated packets. */
  inIf: string;
  /** Output interface, empty on the input hook. */
  outIf: string;
  src: string;
  dst: string;
  /** Lowercase protocol name as netfilter prints it; a number for protocols it does not name. */
  proto: DenyProto;
  /** Source / destination port for tcp, udp, udplite, sctp and dccp; null otherwise. */
  srcPort: number | null;
  dstPort: number | null;
  /** IP packet length (`LEN=`), headers included. */
  bytes: number;
}

const PORTED = new Set(['tcp', 'udp', 'udplite', 'sctp', 'dccp']);

/** netfilter's `KEY=value` fields of the logged packet; the nested `[…]` of an ICMP error is cut. */
function fields(text: string): Map<string, string> {
  const bracket = text.indexOf('[');
  const out = new Map<string, string>();
  for (const token of (bracket < 0 ? text : text.slice(0, bracket)).split(' ')) {
    const eq = token.indexOf('=');
    if (eq <= 0) continue;
    const key = token.slice(0, eq);
    if (!out.has(key)) out.set(key, token.slice(eq + 1));
  }
  return out;
}

const uint = (text: string | undefined, max: number): number | null =>
  text !== undefined && /^\d{1,10}$/.test(text) && Number(text) <= max ? Number(text) : null;

/**
 * Parses a kernel log message carrying a Director log prefix; null for any other line and for a
 * Director line whose packet fields are missing or malformed (a truncated record).
 */
export function parseDenyLine(message: string): DenyRecord | null {
  const prefix = parseLogLine(message);
  if (!prefix) return null;
  // parseLogLine validated the prefix; find it again for the raw tag and the text after it.
  const head = `${prefix.audit ? 'dira' : 'dir'}:${prefix.short}:`;
  const at = message.indexOf(head);
  const end = message.indexOf(': ', at + head.length);
  if (at < 0 || end < 0) return null;
  const rawTag = message.slice(at + head.length, end);
  const f = fields(message.slice(end + 2));
  const inIf = f.get('IN');
  const outIf = f.get('OUT');
  const src = f.get('SRC');
  const dst = f.get('DST');
  const bytes = uint(f.get('LEN'), 65535 + 40);
  const protoText = f.get('PROTO');
  if (inIf === undefined || outIf === undefined || !src || !dst || !isIP(src) || !isIP(dst) || bytes === null || !protoText) {
    return null;
  }
  const proto = protoText.toLowerCase();
  let srcPort: number | null = null;
  let dstPort: number | null = null;
  if (PORTED.has(proto)) {
    srcPort = uint(f.get('SPT'), 65535);
    dstPort = uint(f.get('DPT'), 65535);
    if (srcPort === null || dstPort === null) return null;
  }
  return { audit: prefix.audit, short: prefix.short, tag: prefix.tag, rawTag, inIf, outIf, src, dst, proto, srcPort, dstPort, bytes };
}

/** Where records come from: each `read` fills `buf` with one record or throws (`EAGAIN`, `EPIPE`). */
export interface RecordSource {
  read(buf: Buffer): Promise<number>;
  close(): Promise<void>;
}

/** `/dev/kmsg` opened non-blocking: a read with nothing new fails with EAGAIN at once. */
export async function openKmsg(path = '/dev/kmsg'): Promise<RecordSource> {
  const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  return {
    read: async (buf) => (await handle.read(buf, 0, buf.length, null)).bytesRead,
    close: () => handle.close(),
  };
}

/** Microseconds since boot (CLOCK_BOOTTIME, the kernel log's clock), from `/proc/uptime`. */
export async function bootUsecFromUptime(): Promise<number> {
  const text = await readFile('/proc/uptime', 'utf8');
  const seconds = Number(text.split(' ')[0]);
  if (!Number.isFinite(seconds)) throw new Error(`unexpected /proc/uptime content: ${JSON.stringify(text)}`);
  return Math.floor(seconds * 1e6);
}

export interface DenyLogReaderOptions {
  /** Opens the record source; default {@link openKmsg} on `/dev/kmsg`. */
  open?: () => Promise<RecordSource>;
  /** The kernel log's "now", microseconds since boot; default {@link bootUsecFromUptime}. */
  bootUsec?: () => Promise<number>;
  /** Delay between polls once the log is drained, in milliseconds; default 100. */
  pollMs?: number;
  /** Called when a read fails for good (the reader then stops) or `onRecord` throws. */
  onError?: (err: unknown) => void;
}

export type TimedDenyRecord = DenyRecord & { usec: number };

const errCode = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;
const DIR_BYTES = Buffer.from('dir');

/**
 * Follows the kernel log and hands every Director deny record written after `start()` to a
 * callback. Records already in the kernel's ring buffer are skipped by their timestamp while the
 * backlog drains (`/proc/uptime` has 10 ms resolution: a record from the last few ms before
 * start may still come through); everything read after the backlog is new.
 */
export class DenyLogReader implements AsyncDisposable {
  readonly #open: () => Promise<RecordSource>;
  readonly #bootUsec: () => Promise<number>;
  readonly #pollMs: number;
  readonly #onError: (err: unknown) => void;
  #source: RecordSource | null = null;
  #loop: Promise<void> | null = null;
  #stop = new AbortController();
  #overruns = 0;

  constructor(opts: DenyLogReaderOptions = {}) {
    this.#open = opts.open ?? (() => openKmsg());
    this.#bootUsec = opts.bootUsec ?? bootUsecFromUptime;
    this.#pollMs = opts.pollMs ?? 100;
    this.#onError = opts.onError ?? (() => {});
  }

  /** How many times the kernel overwrote records before they were read (EPIPE). */
  get overruns(): number {
    return this.#overruns;
  }

  /**
   * Opens the log and resolves once the backlog present at start is drained, so every deny
   * logged after the promise resolves is delivered. Rejects when the log cannot be opened
   * (`/dev/kmsg` needs root or CAP_SYSLOG with `kernel.dmesg_restrict=1`).
   */
  async start(onRecord: (r: TimedDenyRecord) => void): Promise<void> {
    if (this.#loop) throw new Error('DenyLogReader already started');
    const startUsec = await this.#bootUsec();
    const source = await this.#open();
    this.#source = source;
    let drained!: () => void;
    const backlog = new Promise<void>((resolve) => (drained = resolve));
    this.#loop = this.#run(source, startUsec, onRecord, drained).finally(drained);
    await backlog;
  }

  async #run(source: RecordSource, startUsec: number, onRecord: (r: TimedDenyRecord) => void, drained: () => void): Promise<void> {
    const buf = Buffer.alloc(8192);
    const signal = this.#stop.signal;
    let inBacklog = true;
    while (!signal.aborted) {
      let n: number;
      try {
        n = await source.read(buf);
      } catch (err) {
        const code = errCode(err);
        if (code === 'EPIPE') {
          this.#overruns++;
          continue;
        }
        if (code === 'EINTR') continue;
        if (code !== 'EAGAIN') {
          if (!signal.aborted) this.#onError(err);
          return;
        }
        if (inBacklog) {
          inBacklog = false;
          drained();
        }
        try {
          await sleep(this.#pollMs, undefined, { signal, ref: false });
        } catch {
          return; // aborted by stop()
        }
        continue;
      }
      if (n === 0) continue;
      // Most kernel messages are not ours: look for "dir" in the bytes before decoding anything.
      const record = buf.subarray(0, n);
      const semi = record.indexOf(0x3b); // ';' ends the header
      if (semi < 0 || record.indexOf(DIR_BYTES, semi) < 0) continue;
      const rec = parseKmsgRecord(record.toString('utf8'));
      if (!rec || (inBacklog && rec.usec < startUsec)) continue;
      const deny = parseDenyLine(rec.message);
      if (!deny) continue;
      try {
        onRecord({ ...deny, usec: rec.usec });
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  /**
   * Stops following and closes the log. Reads are non-blocking, so at most one in-flight read
   * (which returns at once) is awaited; a poll wait is cut short.
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    const source = this.#source;
    this.#source = null;
    if (source) await source.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Token bucket per key, so a flood of deny records becomes a bounded stream of events: each key
 * gets `burst` events at once and `perKeyPerSecond` after that; refused takes are counted.
 */
export class EventRateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, { tokens: number; atMs: number; suppressed: number }>();

  /**
   * @param perKeyPerSecond sustained events per key per second (> 0)
   * @param burst events a quiet key may emit at once (≥ 1)
   * @param maxKeys keys tracked before idle ones (full bucket, nothing suppressed) are forgotten; default 10000
   */
  constructor(perKeyPerSecond: number, burst: number, clock: Clock = systemClock, maxKeys = 10_000) {
    if (!(perKeyPerSecond > 0) || !(burst >= 1)) throw new RangeError('EventRateLimiter needs perKeyPerSecond > 0 and burst >= 1');
    this.#perMs = perKeyPerSecond / 1000;
    this.#burst = burst;
    this.#clock = clock;
    this.#maxKeys = maxKeys;
  }

  #bucket(key: string, nowMs: number) {
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.#maxKeys) this.#prune(nowMs);
      b = { tokens: this.#burst, atMs: nowMs, suppressed: 0 };
      this.#buckets.set(key, b);
      return b;
    }
    b.tokens = Math.min(this.#burst, b.tokens + Math.max(0, nowMs - b.atMs) * this.#perMs);
    b.atMs = nowMs;
    return b;
  }

  #prune(nowMs: number): void {
    for (const [key, b] of this.#buckets) {
      const full = b.tokens + Math.max(0, nowMs - b.atMs) * this.#perMs >= this.#burst;
      if (full && b.suppressed === 0) this.#buckets.delete(key);
    }
  }

  /** Whether an event for `key` may go out now; a refusal is counted in {@link suppressed}. */
  take(key: string): boolean {
    const b = this.#bucket(key, this.#clock.nowMs());
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    b.suppressed += 1;
    return false;
  }

  /** Takes refused for `key` since the start or the last {@link resetSuppressed}. */
  suppressed(key: string): number {
    return this.#buckets.get(key)?.suppressed ?? 0;
  }

  /** Returns the suppressed count of `key` and sets it back to 0 (e.g. when reporting it). */
  resetSuppressed(key: string): number {
    const b = this.#buckets.get(key);
    if (!b) return 0;
    const n = b.suppressed;
    b.suppressed = 0;
    return n;
  }
}
