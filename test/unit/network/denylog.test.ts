import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DenyLogReader,
  EventRateLimiter,
  parseDenyLine,
  parseKmsgRecord,
  type RecordSource,
  type TimedDenyRecord,
} from '../../../runtime/network/denylog.ts';

const test = suite('denylog');

const V4_TCP =
  'dir:abcd1234:o0: IN= OUT=dla SRC=192.0.2.1 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=33176 DF PROTO=TCP SPT=45904 DPT=4444 WINDOW=64240 RES=0x00 SYN URGP=0 ';
const MAC = 'MAC=02:42:ac:11:00:02:02:42:0a:fa:01:02:08:00';

test('parseKmsgRecord reads sequence, boot time and the first message line', () => {
  assert.equal(parseKmsgRecord(`4,3100,2021588536,-;${V4_TCP}\n`), { seq: 3100, usec: 2021588536, message: V4_TCP });
  assert.equal(parseKmsgRecord('6,853,1179785085,-,caller=T1;eth0: renamed from veth0\n SUBSYSTEM=net\n DEVICE=n7\n'), {
    seq: 853,
    usec: 1179785085,
    message: 'eth0: renamed from veth0',
  });
  assert.is(parseKmsgRecord('no header here'), null);
  assert.is(parseKmsgRecord('x,1,2,-;msg'), null);
});

test('parseDenyLine: IPv4 TCP with ports', () => {
  assert.equal(parseDenyLine(V4_TCP), {
    audit: false,
    short: 'abcd1234',
    tag: { kind: 'rule', direction: 'outbound', index: 0 },
    rawTag: 'o0',
    inIf: '',
    outIf: 'dla',
    src: '192.0.2.1',
    dst: '198.51.100.7',
    proto: 'tcp',
    srcPort: 45904,
    dstPort: 4444,
    bytes: 60,
  });
});

test("parseDenyLine: UDP keeps the IP length, not the UDP header's LEN", () => {
  const r = parseDenyLine(
    `dir:3f9a01bc:o.dns: IN=br-3f9a OUT=eth0 ${MAC} SRC=10.250.1.2 DST=203.0.113.53 LEN=71 TOS=0x00 PREC=0x00 TTL=63 ID=1234 DF PROTO=UDP SPT=40000 DPT=53 LEN=51 `,
  );
  assert.ok(r);
  assert.equal(r.tag, { kind: 'guard', chain: 'out', guard: 'dns' });
  assert.is(r.rawTag, 'o.dns');
  assert.is(r.inIf, 'br-3f9a');
  assert.is(r.proto, 'udp');
  assert.is(r.dstPort, 53);
  assert.is(r.bytes, 71);
});

test("parseDenyLine: ICMP has no ports, and an ICMP error's quoted packet is ignored", () => {
  const echo = parseDenyLine(
    `dir:3f9a01bc:o.default: IN=br-3f9a OUT=eth0 ${MAC} SRC=10.250.1.2 DST=203.0.113.9 LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 ID=12 SEQ=1 `,
  );
  assert.ok(echo);
  assert.equal([echo.proto, echo.srcPort, echo.dstPort, echo.dst], ['icmp', null, null, '203.0.113.9']);
  const unreachable = parseDenyLine(
    'dir:3f9a01bc:i.default: IN=eth0 OUT=br-3f9a SRC=203.0.113.9 DST=10.250.1.2 LEN=92 TOS=0x00 PREC=0xC0 TTL=63 ID=7 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.250.1.2 DST=203.0.113.9 LEN=64 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDP SPT=40000 DPT=9 LEN=44 ] ',
  );
  assert.ok(unreachable);
  assert.equal([unreachable.src, unreachable.dst, unreachable.proto, unreachable.bytes], ['203.0.113.9', '10.250.1.2', 'icmp', 92]);
});

test('parseDenyLine: IPv6 TCP in audit mode, and ICMPv6', () => {
  const r = parseDenyLine(
    `dira:3f9a01bc:o2: IN=br-3f9a OUT=eth0 ${MAC} SRC=2001:db8:1::2 DST=2001:db8::1 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=12345 PROTO=TCP SPT=51000 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 `,
  );
  assert.ok(r);
  assert.equal(
    [r.audit, r.src, r.dst, r.proto, r.srcPort, r.dstPort, r.bytes],
    [true, '2001:db8:1::2', '2001:db8::1', 'tcp', 51000, 443, 80],
  );
  assert.equal(r.tag, { kind: 'rule', direction: 'outbound', index: 2 });
  const ping = parseDenyLine(
    'dir:3f9a01bc:i.default: IN=eth0 OUT=br-3f9a SRC=2001:db8::1 DST=2001:db8:1::2 LEN=104 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=5 SEQ=1 ',
  );
  assert.ok(ping);
  assert.equal([ping.proto, ping.dstPort, ping.tag], ['icmpv6', null, { kind: 'guard', chain: 'in', guard: 'default' }]);
});

test('parseDenyLine: other kernel lines and truncated Director lines are null', () => {
  assert.is(parseDenyLine('docker0: port 1(veth1) entered blocking state'), null);
  assert.is(parseDenyLine('[UFW BLOCK] IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 LEN=60 PROTO=TCP SPT=1 DPT=2'), null);
  assert.is(
    parseDenyLine(
      'dir:abcd1234:o0: IN= OUT=dla SRC=192.0.2.1 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=33176 DF PROTO=TCP SPT=45',
    ),
    null,
  );
  assert.is(parseDenyLine('dir:abcd1234:o0: IN= OUT=dla SRC=192.0.2.1 DS'), null);
  assert.is(parseDenyLine('dir:abcd1234:o0: IN= OUT=dla SRC=192.0.2.1 DST=not-an-ip LEN=60 PROTO=ICMP TYPE=8'), null);
});

/** A fake /dev/kmsg: queued records, then EAGAIN; `errors` are thrown first, in order. */
function fakeSource(records: string[], errors: string[] = []) {
  const state = { closed: false, reads: 0 };
  const source: RecordSource = {
    read: (buf) => {
      state.reads++;
      const code = errors.shift();
      if (code) return Promise.reject(Object.assign(new Error(code), { code }));
      const next = records.shift();
      if (next === undefined) return Promise.reject(Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' }));
      return Promise.resolve(buf.write(next));
    },
    close: () => {
      state.closed = true;
      return Promise.resolve();
    },
  };
  return { source, state, push: (r: string) => records.push(r) };
}

test('DenyLogReader skips the backlog before start, survives overruns and stops while polling', async () => {
  const fake = fakeSource(
    [
      `4,1,999000,-;${V4_TCP}\n`, // before start: skipped
      '6,2,1000500,-;eth0: link up\n',
      `4,3,1000600,-;${V4_TCP.replace('o0', 'o1')}\n`,
    ],
    ['EPIPE'],
  );
  const seen: TimedDenyRecord[] = [];
  const reader = new DenyLogReader({ open: () => Promise.resolve(fake.source), bootUsec: () => Promise.resolve(1_000_000), pollMs: 5 });
  await reader.start((r) => seen.push(r));
  assert.equal(
    seen.map((r) => [r.rawTag, r.usec]),
    [['o1', 1000600]],
  );
  assert.is(reader.overruns, 1);
  // After the backlog, every record is new, even with an older timestamp.
  fake.push(`4,4,5,-;${V4_TCP.replace('o0', 'o2')}\n`);
  for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(
    seen.map((r) => r.rawTag),
    ['o1', 'o2'],
  );
  const t = Date.now();
  await reader.stop();
  assert.ok(Date.now() - t < 50, 'stop cuts the poll wait short');
  assert.ok(fake.state.closed);
});

test('DenyLogReader reports a hard read error and a throwing callback without dying silently', async () => {
  const errors: unknown[] = [];
  const fake = fakeSource([`4,1,2000000,-;${V4_TCP}\n`], []);
  const reader = new DenyLogReader({
    open: () => Promise.resolve(fake.source),
    bootUsec: () => Promise.resolve(0),
    pollMs: 5,
    onError: (e) => errors.push(e),
  });
  await reader.start(() => {
    throw new Error('boom');
  });
  assert.is((errors[0] as Error).message, 'boom');
  const broken = fakeSource([], ['EIO']);
  const r2 = new DenyLogReader({
    open: () => Promise.resolve(broken.source),
    bootUsec: () => Promise.resolve(0),
    onError: (e) => errors.push(e),
  });
  await r2.start(() => {});
  assert.is((errors[1] as { code: string }).code, 'EIO');
  await Promise.all([reader.stop(), r2.stop()]);
});

test('EventRateLimiter: burst, then the sustained rate, per key, counting refusals', () => {
  let now = 0;
  const rl = new EventRateLimiter(2, 3, { nowMs: () => now });
  assert.equal(
    [1, 2, 3, 4, 5].map(() => rl.take('a')),
    [true, true, true, false, false],
  );
  assert.is(rl.suppressed('a'), 2);
  assert.ok(rl.take('b'), 'keys are independent');
  assert.is(rl.suppressed('b'), 0);
  now = 499;
  assert.not.ok(rl.take('a'));
  now = 500; // 2 per second: one token per 500 ms
  assert.ok(rl.take('a'));
  assert.not.ok(rl.take('a'));
  assert.is(rl.resetSuppressed('a'), 4);
  assert.is(rl.suppressed('a'), 0);
  now = 60_000; // refills to the burst, not beyond
  assert.equal(
    [1, 2, 3, 4].map(() => rl.take('a')),
    [true, true, true, false],
  );
  assert.throws(() => new EventRateLimiter(0, 1));
});

test('EventRateLimiter forgets idle keys past maxKeys but keeps ones with suppressed counts', () => {
  let now = 0;
  const rl = new EventRateLimiter(1, 1, { nowMs: () => now }, 2);
  rl.take('a');
  rl.take('a'); // suppressed
  rl.take('b');
  now = 10_000;
  rl.take('c'); // prunes b (idle), keeps a
  assert.is(rl.suppressed('a'), 1);
});

test.run();
