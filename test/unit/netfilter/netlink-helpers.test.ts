/**
 * The netlink helper processes as their owner sees them: started on first use, one per
 * namespace and perl, not restarted in a loop when they cannot work, ended by `close()`. The
 * helpers here are stand-in scripts (no netlink socket, no root); `text.test.ts` drives real ones.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Clock } from '../../../core/clock.ts';
import { NetlinkError, NetlinkHelpers, RESPAWN_AFTER_MS } from '../../../netfilter/netlink-helpers.ts';

const test = suite('netfilter netlink helpers');

let dir = '';
test.before.each(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'netlink-helper-'));
});
test.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
});

const log = () => path.join(dir, 'log');
const lines = () => (existsSync(log()) ? readFileSync(log(), 'utf8').split('\n').filter(Boolean) : []);

/** A stand-in for perl: logs its start and exit, runs `body` in between. */
function fakePerl(body: string): string {
  const file = path.join(dir, 'perl');
  writeFileSync(file, `#!/bin/sh\necho started >> '${log()}'\n${body}\necho exited >> '${log()}'\n`, { mode: 0o700 });
  return file;
}

/** Answers every batch "sent, the kernel said nothing" (committed), as the real helper does; exits when stdin ends. */
const ANSWERS = `perl -e 'binmode STDIN; binmode STDOUT; $| = 1;
  while (sysread(STDIN, my $h, 4) == 4) { my $n = unpack("N", $h); my $b = ""; sysread(STDIN, $b, $n - length($b), length($b)) while length($b) < $n; syswrite(STDOUT, pack("C N", 0, 0)); }'`;

async function until(fn: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const fakeClock = (): Clock & { ms: number } => ({
  ms: 1_000_000,
  nowMs() {
    return this.ms;
  },
});

test('one helper carries every batch of its owner, and close() ends it', async () => {
  const perlPath = fakePerl(ANSWERS);
  const helpers = new NetlinkHelpers();
  for (let i = 0; i < 3; i++) await helpers.send(Buffer.alloc(20), { perlPath, timeoutMs: 5000 });
  assert.equal(lines(), ['started']);
  helpers.close();
  await until(() => lines().includes('exited'), 'the helper to exit');
  try {
    await helpers.send(Buffer.alloc(20), { perlPath });
    assert.unreachable('sent after close');
  } catch (err) {
    assert.instance(err, NetlinkError);
    assert.match((err as Error).message, /closed/);
  }
  assert.equal(lines(), ['started', 'exited'], 'a send after close started a helper');
});

test('owners do not share helpers: each starts and ends its own', async () => {
  const perlPath = fakePerl(ANSWERS);
  const a = new NetlinkHelpers();
  const b = new NetlinkHelpers();
  await a.send(Buffer.alloc(20), { perlPath });
  await b.send(Buffer.alloc(20), { perlPath });
  assert.equal(lines(), ['started', 'started']);
  a.close();
  await until(() => lines().includes('exited'), 'the first helper to exit');
  await b.send(Buffer.alloc(20), { perlPath });
  assert.equal(lines(), ['started', 'started', 'exited'], "closing one owner's helpers ended the other's");
  b.close();
  await until(() => lines().filter((l) => l === 'exited').length === 2, 'the second helper to exit');
});

test('a helper that dies before answering is not started again until RESPAWN_AFTER_MS have passed on the injected clock', async () => {
  const perlPath = fakePerl(`echo 'netlink socket: Permission denied' >&2\nexit 2`);
  const clock = fakeClock();
  const helpers = new NetlinkHelpers({ clock });
  const fails = async (): Promise<string> => {
    const err = await helpers.send(Buffer.alloc(20), { perlPath, timeoutMs: 5000 }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(err, NetlinkError);
    return (err as Error).message;
  };
  assert.match(await fails(), /Permission denied/);
  for (let i = 0; i < 2; i++) await fails();
  clock.ms += RESPAWN_AFTER_MS - 1;
  await fails();
  assert.is(lines().filter((l) => l === 'started').length, 1, 'the helper was started again before its time');
  clock.ms += 1;
  assert.match(await fails(), /Permission denied/);
  assert.is(lines().filter((l) => l === 'started').length, 2, 'the helper was not started again once its time came');
  helpers.close();
});

test.run();
