import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode } from 'dns-packet';
import { RCODE, clientUdpLimitBytes, encodeReply, encodeUpstreamQuery, parseQuery, qtypeName } from '../../../runtime/network/dns/codec.ts';
import { formatAddress, readMessage, WireFormatError } from '../../../runtime/network/dns/wire.ts';
import { query } from './support.ts';

const parsed = (buf: Buffer) => {
  const r = parseQuery(buf);
  if (!r.ok) throw new Error(`not parsed: ${r.issue}`);
  return r.query;
};

test('parses a query, keeping the client case in wireName and lowercasing name', () => {
  const q = parsed(query('Api.Example.TEST', 'AAAA', { id: 77, udpPayloadSize: 4096 }));
  assert.is(q.id, 77);
  assert.is(q.wireName, 'Api.Example.TEST');
  assert.is(q.name, 'api.example.test');
  assert.is(q.qtype, 28);
  assert.is(q.rd, true);
  assert.equal(q.edns, { udpPayloadBytes: 4096, dnssecOk: false });
  assert.is(clientUdpLimitBytes(q), 4096);
  assert.is(clientUdpLimitBytes(parsed(query('a.test', 'A'))), 512);
});

test('refuses to answer junk, responses and headers without an id', () => {
  assert.equal(parseQuery(Buffer.from([1, 2, 3])), { ok: false, id: null, issue: 'shorter than a DNS header' });
  const response = encode({ type: 'response', id: 5, questions: [{ name: 'a.test', type: 'A' }] });
  assert.is((parseQuery(response) as { id: number | null }).id, null);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x1234, 0);
  header.writeUInt16BE(1, 4); // one question, not present
  assert.equal(parseQuery(header), { ok: false, id: 0x1234, issue: 'Cannot decode name (buffer overflow)' });
});

test('a label hiding a dot or odd bytes is malformed, so the checked name is the forwarded one', () => {
  const q = query('xx.example.test', 'A', { id: 9 });
  q[14] = '.'.charCodeAt(0); // the label "xx" becomes "x.": same text as the name x..example.test
  assert.match(decode(q).questions?.[0]?.name ?? '', 'x.', 'dns-packet alone would accept it');
  const r = parseQuery(q);
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.id, 9);
  const bin = query('ab.example.test', 'A');
  bin[13] = 0xc3;
  assert.is(parseQuery(bin).ok, false);
});

test('two questions or extra records are malformed', () => {
  const two = encode({
    type: 'query',
    id: 3,
    questions: [
      { name: 'a.test', type: 'A' },
      { name: 'b.test', type: 'A' },
    ],
  });
  assert.equal(parseQuery(two), { ok: false, id: 3, issue: 'not exactly one question' });
  const extra = encode({
    type: 'query',
    id: 4,
    questions: [{ name: 'a.test', type: 'A' }],
    additionals: [{ type: 'TXT', name: 'x.test', data: 'smuggled' }],
  });
  assert.equal(parseQuery(extra), { ok: false, id: 4, issue: 'additional records other than one OPT' });
});

test('the upstream query carries only the question and a bare OPT', () => {
  const q = parsed(query('Files.pkg.test', 'UNKNOWN_65', { id: 1, udpPayloadSize: 4096 }));
  assert.is(qtypeName(q.qtype), 'HTTPS');
  const up = decode(encodeUpstreamQuery(q, 4242));
  assert.is(up.id, 4242);
  assert.equal(up.questions, [{ name: 'Files.pkg.test', type: 'UNKNOWN_65' as never, class: 'IN' }]);
  assert.is(up.additionals?.length, 1);
  assert.is(up.additionals?.[0]?.type, 'OPT');
  const plain = decode(encodeUpstreamQuery(parsed(query('a.test', 'A')), 1));
  assert.is(plain.additionals?.length, 0);
});

test('Director replies carry the id, the question and the rcode', () => {
  const q = parsed(query('a.test', 'ANY', { id: 99 }));
  const r = decode(encodeReply(q, q.id, RCODE.REFUSED)) as ReturnType<typeof decode> & { rcode: string };
  assert.is(r.id, 99);
  assert.is(r.type, 'response');
  assert.is(r.rcode, 'REFUSED');
  assert.is(r.questions?.[0]?.name, 'a.test');
  assert.is(r.questions?.[0]?.type, 'ANY');
  const tc = decode(encodeReply(q, 1, RCODE.NOERROR, { truncated: true }));
  assert.is(tc.flag_tc, true);
});

test('readMessage honours RDLENGTH and rejects an A record of the wrong length', () => {
  const good = encode({
    type: 'response',
    id: 1,
    questions: [{ name: 'a.test', type: 'A' }],
    answers: [{ type: 'A', name: 'a.test', ttl: 60, data: '198.51.100.1' }],
  });
  const m = readMessage(good);
  assert.is(m.records.length, 1);
  assert.is(formatAddress(m.records[0]!.rdata), '198.51.100.1');
  const bad = Buffer.from(good);
  // RDLENGTH of the only record sits 2 bytes before its 4 data bytes at the end.
  bad.writeUInt16BE(8, bad.length - 6);
  assert.throws(
    () => readMessage(Buffer.concat([bad, Buffer.alloc(4)])),
    (e: unknown) => e instanceof WireFormatError && /RDLENGTH 8/.test(e.message),
  );
});

test('readMessage refuses compression loops', () => {
  const loop = Buffer.alloc(14);
  loop.writeUInt16BE(1, 4);
  loop.writeUInt16BE(0xc00c, 12); // points at itself
  assert.throws(() => readMessage(loop), /pointer/);
});

test('formats IPv6 per RFC 5952 and mapped IPv4 as ::ffff:a.b.c.d', () => {
  const v6 = (text: string) => formatAddress(Buffer.from(text.split(':').flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
  assert.is(v6('2001:db8:0:0:0:0:0:10'), '2001:db8::10');
  assert.is(v6('0:0:0:0:0:0:0:1'), '::1');
  assert.is(v6('2001:db8:0:1:0:0:1:1'), '2001:db8:0:1::1:1');
  assert.is(v6('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2:3:4:5:6');
  assert.is(v6('0:0:0:0:0:ffff:7f00:1'), '::ffff:127.0.0.1');
});

test.run();
