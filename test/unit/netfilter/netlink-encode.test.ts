/**
 * Encoding per-network documents as nf_tables netlink batches, and refusing what the encoder does
 * not cover. The expected encodings are nft 1.0.6's own for the same rules (read off the batches
 * `nft -f` sends); the integration test compares the kernel's bytecode after both.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { compileNetwork, compileRemoveNetwork, compileRetire, compileTable } from '../../../netfilter/compile.ts';
import {
  accept,
  counter,
  ct,
  goto,
  limit,
  log,
  match,
  meta,
  namedCounter,
  payload,
  tableOps,
  type NftCommand,
} from '../../../netfilter/json.ts';
import { encodeDocument, parseReplies, Unencodable } from '../../../netfilter/netlink-encode.ts';
import { networkNameSets } from '../../../netfilter/rules.ts';
import { fullPolicy, twoNetworks } from './fixtures.ts';

const test = suite('netfilter netlink');
const ops = tableOps('director');

interface Attr {
  type: number;
  nested: boolean;
  data: Buffer;
}
function attrs(b: Buffer): Attr[] {
  const out: Attr[] = [];
  for (let o = 0; o + 4 <= b.length;) {
    const len = b.readUInt16LE(o);
    if (len < 4 || o + len > b.length) throw new Error(`bad attribute at ${o}`);
    const type = b.readUInt16LE(o + 2);
    out.push({ type: type & 0x3fff, nested: (type & 0x8000) !== 0, data: b.subarray(o + 4, o + len) });
    o += (len + 3) & ~3;
  }
  return out;
}
const get = (list: Attr[], type: number): Buffer => list.find((a) => a.type === type)!.data;
const str = (b: Buffer): string => b.toString('latin1').replace(/\0$/, '');

interface Message {
  type: number;
  flags: number;
  seq: number;
  family: number;
  resId: number;
  attrs: Attr[];
}
function messages(batch: Buffer): Message[] {
  const out: Message[] = [];
  for (let o = 0; o < batch.length;) {
    const len = batch.readUInt32LE(o);
    out.push({
      type: batch.readUInt16LE(o + 4),
      flags: batch.readUInt16LE(o + 6),
      seq: batch.readUInt32LE(o + 8),
      family: batch[o + 16]!,
      resId: batch.readUInt16BE(o + 18),
      attrs: attrs(batch.subarray(o + 20, o + len)),
    });
    o += (len + 3) & ~3;
  }
  return out;
}

/** A rule's expressions as `name type=hex ...` (nested data as `type.type=hex`). */
function exprs(m: Message): string[] {
  return attrs(get(m.attrs, 4)).map((elem) => {
    const e = attrs(elem.data);
    const flat = (list: Attr[], prefix: string): string[] =>
      list.flatMap((a) => (a.nested ? flat(attrs(a.data), `${prefix}${a.type}.`) : [`${prefix}${a.type}=${a.data.toString('hex')}`]));
    return [str(get(e, 1)), ...flat(attrs(get(e, 2)), '')].join(' ');
  });
}

const encode = (cmds: NftCommand[]) => messages(encodeDocument({ nftables: cmds }));

test('a batch: BATCH_BEGIN, one message per command numbered from 1, BATCH_END, all for subsystem nftables', () => {
  const ms = encode([ops.add('chain', { name: 'net_a_out_g1' }), ops.flush('chain', { name: 'net_a_out_g1' })]);
  assert.equal(
    ms.map((m) => [m.type, m.seq]),
    [
      [0x10, 0],
      [0x0a03, 1],
      [0x0a08, 2],
      [0x11, 3],
    ],
  );
  assert.equal([ms[0]!.resId, ms[3]!.resId, ms[1]!.family], [10, 10, 1]);
  assert.equal(str(get(ms[1]!.attrs, 1)), 'director');
  assert.equal(str(get(ms[1]!.attrs, 3)), 'net_a_out_g1');
  // add chain creates; flush chain is a DELRULE naming the chain
  assert.is(ms[1]!.flags, 0x401);
  assert.equal(str(get(ms[2]!.attrs, 2)), 'net_a_out_g1');
});

test("rules: nft's dependencies, byte-aligned prefixes loaded short, ranges as two compares, comment as userdata", () => {
  const [, rule, ins] = encode([
    ops.rule('net_a_out_g1', 'o3', [
      match(payload('ip', 'daddr'), { prefix: { addr: '10.200.0.0', len: 24 } }),
      match(payload('tcp', 'dport'), { range: [8000, 8016] }),
      counter(),
      namedCounter('net_a_allowed'),
      accept(),
    ]),
    ops.insertRule('net_a_out', 'entry', [goto('net_a_out_g1')]),
  ]);
  assert.equal(exprs(rule!), [
    'meta 2=0000000f 1=00000001',
    'cmp 1=00000001 2=00000000 3.1=02', // meta nfproto == ipv4
    'payload 1=00000001 2=00000001 3=00000010 4=00000003',
    'cmp 1=00000001 2=00000000 3.1=0ac800',
    'meta 2=00000010 1=00000001',
    'cmp 1=00000001 2=00000000 3.1=06', // meta l4proto == tcp
    'payload 1=00000001 2=00000002 3=00000002 4=00000002',
    'cmp 1=00000001 2=00000005 3.1=1f40',
    'cmp 1=00000001 2=00000003 3.1=1f50',
    'counter',
    'objref 1=00000001 2=6e65745f615f616c6c6f776564', // the counter's name without a NUL, as libnftnl sends it
    'immediate 1=00000000 2.2.1=00000001',
  ]);
  assert.is(rule!.flags, 0xc01, 'appended');
  assert.is(get(rule!.attrs, 7).toString('hex'), `0003${Buffer.from('o3\0').toString('hex')}`);
  assert.is(ins!.flags, 0x401, 'inserted first: no NLM_F_APPEND');
  assert.equal(exprs(ins!), [`immediate 1=00000000 2.2.1=fffffffc 2.2.2=${Buffer.from('net_a_out_g1\0').toString('hex')}`]);
});

test('a dependency is added once per rule; prefixes off byte boundaries are masked; ct state is a bit test', () => {
  const [, rule, ctRule] = encode([
    ops.rule('c', 'x', [
      match(payload('ip', 'daddr'), { prefix: { addr: '10.20.0.0', len: 20 } }, '!='),
      match(payload('ip', 'daddr'), '@subnets_v4'),
      limit(5, 10),
      log('dir:a:o.xnet: '),
    ]),
    ops.rule('c', 'y', [match(ct('state'), ['established', 'related'], 'in'), match(meta('iifname'), 'dt-a', '!='), accept()]),
  ]);
  const e = exprs(rule!);
  assert.is(e.filter((x) => x.startsWith('meta ')).length, 1);
  assert.ok(e.includes('bitwise 1=00000001 2=00000001 3=00000004 4.1=fffff000 5.1=00000000'));
  assert.ok(e.includes('cmp 1=00000001 2=00000001 3.1=0a140000'));
  assert.ok(e.includes(`lookup 2=00000001 1=${Buffer.from('subnets_v4\0').toString('hex')}`));
  assert.ok(e.includes('limit 1=0000000000000005 2=0000000000000001 3=0000000a 4=00000000 5=00000000'));
  const c = exprs(ctRule!);
  assert.is(c[0], 'ct 2=00000000 1=00000001');
  assert.match(c[1]!, /^bitwise .* 4\.1=(06000000|00000006) /);
  assert.is(c[4], `cmp 1=00000001 2=00000001 3.1=${Buffer.from('dt-a').toString('hex')}${'00'.repeat(12)}`);
});

test('a new name set carries its id, and a rule in the same batch refers to it by name and id', () => {
  const [, set, rule] = encode([
    ops.add('set', { name: 'net_a_h1_v6', type: 'ipv6_addr', flags: ['timeout'] }),
    ops.rule('c', 'o1', [match(payload('ip6', 'daddr'), '@net_a_h1_v6'), accept()]),
  ]);
  assert.equal(
    set!.attrs.map((a) => a.type),
    [1, 2, 3, 4, 5, 10, 13],
  );
  assert.equal(
    [
      get(set!.attrs, 3).readUInt32BE(),
      get(set!.attrs, 4).readUInt32BE(),
      get(set!.attrs, 5).readUInt32BE(),
      get(set!.attrs, 10).readUInt32BE(),
    ],
    [0x10, 8, 16, 1],
  );
  assert.ok(exprs(rule!).includes(`lookup 2=00000001 1=${Buffer.from('net_a_h1_v6\0').toString('hex')} 4=00000001`));
});

test('every policy generation the compiler emits encodes; creation, retiring and removal go through nft', () => {
  const input = twoNetworks('director');
  const a = input.networks[0]!;
  for (const net of [
    a,
    { ...a, isolated: true },
    { ...a, policy: fullPolicy({ mode: 'audit', logging: false, metrics: false }) },
    input.networks[1]!,
  ]) {
    assert.ok(
      encodeDocument(
        compileNetwork(
          input,
          net,
          3,
          networkNameSets(a).map((s) => s.name),
        ),
      ).length > 0,
    );
  }
  for (const doc of [
    compileTable(input),
    compileNetwork(input, a, 0),
    compileRetire('director', a.short, 3, { retired: [1], staleSets: [] }),
    compileRemoveNetwork('director', a),
  ]) {
    assert.throws(
      () => encodeDocument(doc),
      (e: unknown) => e instanceof Unencodable,
    );
  }
});

test('refuses what it does not cover instead of guessing', () => {
  const refused: NftCommand[] = [
    ops.add('chain', { name: 'base', type: 'filter', hook: 'forward', prio: -1, policy: 'accept' }),
    ops.add('map', { name: 'm', type: 'ifname', map: 'verdict' }),
    ops.add('element', ops.elements('bridges', ['dt-a'])),
    ops.add('set', { name: 's', type: 'ifname' }),
    ops.rule('c', 'x', [match(payload('tcp', 'dport'), { range: [1, 2] }, '!='), accept()]),
    ops.rule('c', 'x', [match(payload('ip', 'daddr'), '@s', '!='), accept()]),
    ops.rule('c', 'x', [match(ct('state'), ['establishd'], 'in'), accept()]),
    ops.rule('c', 'x', [match(meta('iifname'), 'dt-*'), accept()]),
    ops.rule('c', 'x', [match(meta('mark'), 1), accept()]),
    ops.rule('c', 'x', [match(payload('ip', 'daddr'), '2001:db8::1'), accept()]),
    ops.rule('c', 'x', [log('line\nbreak')]),
    ops.rule('c', 'bad "quote\u0001', [accept()]),
    ops.rule('na me', 'x', [accept()]),
    ops.rule('c', 'x', [{ reject: null }]),
    ops.rule('c', 'x', []),
    { add: { chain: { family: 'ip', table: 'filter', name: 'x' } } },
  ];
  for (const c of refused)
    assert.throws(
      () => encodeDocument({ nftables: [c] }),
      (e: unknown) => e instanceof Unencodable,
      JSON.stringify(c),
    );
});

test('replies: errors name the message that failed; acknowledgements are not errors', () => {
  const reply = (seq: number, err: number) => {
    const b = Buffer.alloc(36);
    b.writeUInt32LE(36, 0);
    b.writeUInt16LE(2, 4); // NLMSG_ERROR
    b.writeInt32LE(err, 16);
    b.writeUInt32LE(seq, 28); // the original header's seq
    return b;
  };
  assert.equal(parseReplies(Buffer.concat([reply(2, 0), reply(3, -2), reply(4, -17)])), [
    { seq: 3, errno: 2 },
    { seq: 4, errno: 17 },
  ]);
  assert.equal(parseReplies(Buffer.alloc(0)), []);
  // A reply cut short (a message longer than what arrived, or a header under 16 bytes) ends the
  // parse with what came before it, rather than reading past the buffer.
  const whole = Buffer.concat([reply(3, -2), reply(4, -17)]);
  assert.equal(parseReplies(whole.subarray(0, 36 + 20)), [{ seq: 3, errno: 2 }]);
  const short = reply(5, -1);
  short.writeUInt32LE(8, 0);
  assert.equal(parseReplies(Buffer.concat([reply(3, -2), short])), [{ seq: 3, errno: 2 }]);
});

test.run();
