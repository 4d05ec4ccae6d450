/**
 * The processes that carry netlink batches (`netlink-encode.ts`) to the kernel.
 *
 * Node has no netlink sockets, so each batch goes through a small persistent `perl` process
 * (perl-base is part of every Debian system) that only moves bytes: it sends each batch on a
 * NETLINK_NETFILTER socket and returns what the kernel answered. The kernel processes a batch
 * inside the `sendmsg` call, so every error is queued by the time it returns; no answer means the
 * batch committed, atomically, as with `nft`.
 *
 * {@link NetlinkHelpers} owns those processes: one per (namespace, perl path), started on first
 * use and ended by `close()`. Its owner (the runtime's firewall; a test or benchmark) creates it
 * and closes it; nothing here is module-global.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { systemClock, type Clock } from '../core/clock.ts';
import { parseReplies } from './netlink-encode.ts';
import { inNetns, netnsId } from './netns.ts';

/** Why a batch was not applied: the kernel refused it (nothing changed), or the helper could not be used. Either way the caller goes to `nft`. */
export class NetlinkError extends Error {
  override name = 'NetlinkError';
}

/** `ENOENT` for 2; libuv's names are the kernel's errno names. */
const errnoName = (n: number): string => getSystemErrorName(-n);

/**
 * The helper: reads `length(u32 BE) + batch` from stdin, sends the batch, answers
 * `status(u8: 0 sent, 1 send failed) + length(u32 BE) + bytes` (the kernel's replies, or errno).
 * It exits when its stdin ends.
 */
const HELPER = String.raw`
use strict; use warnings; use Socket;
binmode STDIN; binmode STDOUT; $| = 1;
socket(my $s, 16, 3, 12) or die "netlink socket: $!\n";
bind($s, pack('S S L L', 16, 0, 0, 0)) or die "netlink bind: $!\n";
setsockopt($s, SOL_SOCKET, 33, pack('i', 4 << 20));
sub readn { my $n = shift; my $buf = ''; while (length($buf) < $n) { my $r = sysread(STDIN, $buf, $n - length($buf), length($buf)); return undef unless $r; } return $buf; }
while (defined(my $h = readn(4))) {
  my $len = unpack('N', $h); my $batch = readn($len); last unless defined $batch;
  setsockopt($s, SOL_SOCKET, 32, pack('i', 2 * $len + 65536));
  my $out = '';
  if (!defined(send($s, $batch, 0))) { my $e = $! + 0; syswrite(STDOUT, pack('C N N', 1, 4, $e)); next; }
  while (defined(recv($s, my $r, 1 << 20, 0x40))) { last if length($r) == 0; $out .= $r; }
  syswrite(STDOUT, pack('C N', 0, length($out)) . $out);
}
`;

interface Pending {
  resolve: (r: { sent: boolean; bytes: Buffer }) => void;
  reject: (e: Error) => void;
}

/** One helper process and the batches waiting for its answers, in order. */
class Helper {
  private readonly child: ChildProcess;
  private readonly queue: Pending[] = [];
  private buf: Buffer = Buffer.alloc(0);
  dead: Error | null = null;
  /** When it died (`dead` set), by the owner's clock. */
  diedAtMs = 0;
  /** It answered at least once: it worked, so a new one is worth starting at once if it dies. */
  answered = false;
  /** The program is not installed: not spawned again. */
  missing = false;

  constructor(cmd: string, argv: string[], clock: Clock) {
    this.child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: Buffer[] = [];
    this.child.stderr!.on('data', (d: Buffer) => stderr.push(d));
    this.child.stdout!.on('data', (d: Buffer) => this.onData(d));
    const fail = (e: Error) => {
      if (!this.dead) this.diedAtMs = clock.nowMs();
      this.dead ??= e;
      for (const p of this.queue.splice(0)) p.reject(this.dead);
    };
    this.child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') this.missing = true;
      fail(e);
    });
    this.child.on('close', (code) =>
      fail(new Error(`netlink helper exited (${code ?? 'signal'}): ${Buffer.concat(stderr).toString().trim() || 'no output'}`)),
    );
    this.child.stdin!.on('error', () => undefined);
    this.idle();
  }

  /** An idle helper does not keep the process alive. */
  private idle(): void {
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as Socket | null)?.unref?.();
  }

  private busy(): void {
    this.child.ref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as Socket | null)?.ref?.();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) return;
      const sent = this.buf[0] === 0;
      const bytes = Buffer.from(this.buf.subarray(5, 5 + len));
      this.buf = this.buf.subarray(5 + len);
      this.answered = true;
      this.queue.shift()?.resolve({ sent, bytes });
      if (this.queue.length === 0) this.idle();
    }
  }

  send(batch: Buffer): Promise<{ sent: boolean; bytes: Buffer }> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.busy();
      const head = Buffer.alloc(4);
      head.writeUInt32BE(batch.length);
      this.child.stdin!.write(Buffer.concat([head, batch]));
    });
  }

  /** Ends its stdin: the helper exits once it has answered what it was sent. */
  close(): void {
    this.child.stdin!.end();
  }

  kill(): void {
    this.dead ??= new Error('netlink helper stopped');
    this.child.kill('SIGKILL');
  }
}

/**
 * A helper that died without ever answering (it cannot open its socket, say) is not started
 * again for this long: until then batches go straight to `nft`, rather than each change paying
 * for a process that fails the same way.
 */
export const RESPAWN_AFTER_MS = 60_000;

export interface SendOptions {
  /** The named network namespace whose kernel tables the batch is for (default: the host's). */
  netns?: string;
  /** Path of the perl that carries the batch (default `perl`, looked up in PATH). */
  perlPath?: string;
  /** Stop a helper that has not answered after this long (default 30 000 ms). */
  timeoutMs?: number;
}

export interface NetlinkHelpersOptions {
  /** Times a helper's death, for {@link RESPAWN_AFTER_MS} (default: the system clock). */
  clock?: Clock;
}

/** The helper processes of one owner, by perl path and namespace; see the file header. */
export class NetlinkHelpers implements Disposable {
  private readonly clock: Clock;
  /** `ns` is the namespace's identity, so a namespace deleted and created again under the same name gets a new helper. */
  private readonly helpers = new Map<string, { helper: Helper; ns: number }>();
  private closed = false;

  constructor(opts: NetlinkHelpersOptions = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Whether to start a new helper in place of `h`. */
  private respawn(h: Helper): boolean {
    return h.dead !== null && !h.missing && (h.answered || this.clock.nowMs() - h.diedAtMs >= RESPAWN_AFTER_MS);
  }

  /**
   * Sends one batch; resolves when the kernel has committed it. Rejects with a {@link NetlinkError}
   * when the kernel answered an error (the transaction was aborted as a whole: its message names
   * the failing command and errno), when the helper could not be used, or after {@link close}.
   */
  async send(batch: Buffer, opts: SendOptions = {}): Promise<void> {
    if (this.closed) throw new NetlinkError('netlink helpers closed');
    const perl = opts.perlPath ?? 'perl';
    const key = `${opts.netns ?? ''}\0${perl}`;
    const ns = netnsId(opts.netns);
    if (ns === null) throw new NetlinkError(`network namespace ${opts.netns} not found`);
    let entry = this.helpers.get(key);
    if (!entry || entry.ns !== ns || this.respawn(entry.helper)) {
      entry?.helper.close();
      const [cmd, argv] = inNetns(opts.netns, perl, ['-e', HELPER]);
      entry = { helper: new Helper(cmd, argv, this.clock), ns };
      this.helpers.set(key, entry);
    }
    let reply: { sent: boolean; bytes: Buffer };
    let timer: NodeJS.Timeout | undefined;
    const h = entry.helper;
    try {
      reply = await Promise.race([
        h.send(batch),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            h.kill();
            reject(new Error('netlink helper did not answer in time'));
          }, opts.timeoutMs ?? 30_000);
          timer.unref();
        }),
      ]);
    } catch (err) {
      throw new NetlinkError((err as Error).message);
    } finally {
      clearTimeout(timer);
    }
    if (!reply.sent) throw new NetlinkError(`netlink send failed: ${errnoName(reply.bytes.readUInt32BE(0))}`);
    const errors = parseReplies(reply.bytes);
    if (errors.length) throw new NetlinkError(errors.map((e) => `message ${e.seq}: ${errnoName(e.errno)}`).join('; '));
  }

  /**
   * Ends every helper (each exits once it has answered what it was sent); later sends are
   * refused, so their documents go through `nft`. Idempotent.
   */
  close(): void {
    this.closed = true;
    for (const { helper } of this.helpers.values()) helper.close();
    this.helpers.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
