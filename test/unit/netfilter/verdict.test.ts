/**
 * Verdicts over a read-back, without root: the compiler's documents replayed into the in-memory
 * nft model, listed, parsed by `parseTable`, then evaluated. The integration tests check the same
 * verdicts against real packets.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addResolvedAddresses, compileTable } from '../../../netfilter/compile.ts';
import { DEFAULT_ALWAYS_DENIED, type NetworkInput } from '../../../netfilter/model.ts';
import { parseTable, type TableView } from '../../../netfilter/readback.ts';
import { evaluateVerdict, type VerdictQuery } from '../../../netfilter/verdict.ts';
import { validateNetworkPolicy, type NetworkPolicy } from '../../../policies/network-policy.ts';
import { NftSim, network } from './fixtures.ts';

const test = suite('verdict');
const T = 'director_unit';
const X = '203.0.113.10';
const Y = '203.0.113.20';

const policy = (outbound: unknown[], extra: Record<string, unknown> = {}): NetworkPolicy =>
  validateNetworkPolicy({ name: 'p', outbound, ...extra });

function kernel(a: Partial<NetworkInput>, resolved: { host: string; addr: string }[] = []): TableView {
  const sim = new NftSim();
  const input = {
    table: T,
    alwaysDenied: DEFAULT_ALWAYS_DENIED,
    networks: [network('aaaa1111', 1, null, a), network('bbbb2222', 2, null)],
  };
  sim.apply(compileTable(input));
  for (const r of resolved) sim.apply(addResolvedAddresses(T, input.networks[0]!, { host: r.host }, [{ addr: r.addr, timeoutS: 60 }]));
  return parseTable(sim.list());
}

const ctx = (order: 'first-match' | 'deny-first' | null = 'first-match') => ({
  hostAddresses: ['10.250.1.1', '192.0.2.99'],
  routes: [
    { subnet: '10.250.1.0/24', bridge: 'dt-aaaa1111' },
    { subnet: '10.250.2.0/24', bridge: 'dt-bbbb2222' },
  ],
  order,
  resolver: true,
});

const tcp = (address: string, port: number, extra: Partial<VerdictQuery> = {}): VerdictQuery => ({
  direction: 'outbound',
  protocol: 'tcp',
  address,
  port,
  ...extra,
});

/** `allow|deny by <tag> (<level>)`, what a test compares. */
function said(view: TableView, q: VerdictQuery, order: 'first-match' | 'deny-first' | null = 'first-match'): string {
  const v = evaluateVerdict(view, 'aaaa1111', q, ctx(order));
  return `${v.verdict} by ${v.decidedBy.rule ?? v.decidedBy.tag} (${v.decidedBy.level})${v.passes === (v.verdict === 'allow') ? '' : ' passes'}`;
}

test('allow X:port then deny all: X:port allowed by its rule, X on another port and other hosts denied by the deny-all', () => {
  const view = kernel({
    policy: policy([
      { action: 'allow', protocol: 'tcp', destination: `${X}/32`, port: 8443 },
      { action: 'deny', protocol: 'all' },
    ]),
  });
  assert.is(said(view, tcp(X, 8443)), 'allow by outbound[0] (network)');
  assert.is(said(view, tcp(X, 443)), 'deny by outbound[1] (network)');
  assert.is(said(view, tcp(Y, 8443)), 'deny by outbound[1] (network)');
  assert.is(said(view, { direction: 'outbound', protocol: 'icmp', address: X }), 'deny by outbound[1] (network)');
  const v = evaluateVerdict(view, 'aaaa1111', tcp(X, 8443), ctx());
  assert.equal([v.chain, v.generation, v.rule?.index, v.rule?.port], ['out', 0, 0, 8443]);
});

test('deny X then allow all: X denied by its rule, others allowed, the guards still first (level operator)', () => {
  const view = kernel({
    policy: policy([
      { action: 'deny', protocol: 'all', destination: `${X}/32` },
      { action: 'allow', protocol: 'all' },
    ]),
  });
  assert.is(said(view, tcp(X, 80)), 'deny by outbound[0] (network)');
  assert.is(said(view, tcp(Y, 80)), 'allow by outbound[1] (network)');
  assert.is(said(view, tcp('169.254.169.254', 80)), 'deny by o.range (operator)');
  assert.is(said(view, tcp('::ffff:169.254.169.254', 80)), 'deny by o.range (operator)');
  assert.is(said(view, tcp('10.250.2.7', 7000)), 'deny by o.xnet (operator)', 'another Director network');
  assert.is(said(view, tcp('10.250.1.7', 7000)), 'allow by o.peer (operator)', 'a peer on the same network');
  assert.is(said(view, { direction: 'outbound', protocol: 'udp', address: '198.51.100.88', port: 53 }), 'deny by o.dns (operator)');
  // The host itself: its own chain, where no policy rule reaches.
  const host = evaluateVerdict(view, 'aaaa1111', tcp('192.0.2.99', 22), ctx());
  assert.equal([host.chain, host.verdict, host.decidedBy.tag, host.decidedBy.level], ['host', 'deny', 'h.host', 'operator']);
  assert.is(said(view, { direction: 'outbound', protocol: 'udp', address: '10.250.1.1', port: 53 }), 'allow by h.resolver (operator)');
});

test('the read-back shows each chain in evaluation order: operator guards, then the rules as written, then the default', () => {
  const view = kernel({
    policy: policy([
      { action: 'allow', protocol: 'tcp', port: 443 },
      { action: 'deny', protocol: 'all', destination: `${X}/32` },
    ]),
  });
  const steps = view.networks.aaaa1111!.evaluation.outbound;
  assert.equal(
    steps.map((s) => `${s.level}:${s.rule ?? s.guard}:${s.action}`),
    [
      'operator:peer:allow',
      'operator:range:deny',
      'operator:xnet:deny',
      'operator:resolver:allow',
      'operator:dns:deny',
      'network:established:allow',
      'network:outbound[0]:allow',
      'network:outbound[1]:deny',
      'network:default:deny',
    ],
  );
  assert.equal(steps[6]!.match, ['tcp dport 443']);
  assert.equal(steps[7]!.match, [`ip daddr ${X}/32`]);
  assert.equal(
    view.networks.aaaa1111!.outbound.map((r) => r.index),
    [0, 1],
  );
});

test('a narrower level cannot reopen what a wider one denies: allow-everything still meets the operator guards first', () => {
  const view = kernel({ policy: policy([{ action: 'allow', protocol: 'all', destination: '0.0.0.0/0' }]) });
  for (const [address, guard] of [
    ['169.254.169.254', 'o.range'],
    ['127.0.0.1', 'o.range'],
    ['10.250.2.7', 'o.xnet'],
  ] as const) {
    assert.is(said(view, tcp(address, 80)), `deny by ${guard} (operator)`, address);
  }
  assert.is(said(view, tcp('10.250.1.1', 8080)), 'deny by h.host (operator)');
  assert.is(said(view, tcp(X, 80)), 'allow by outbound[0] (network)');
});

test('host names: the resolver decides first, then the packet to an address in the sets of the rules naming it', () => {
  const allowThenDeny = kernel({
    policy: policy([
      { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 8443 },
      { action: 'deny', protocol: 'all' },
    ]),
  });
  const api = (port: number, extra: Partial<VerdictQuery> = {}): VerdictQuery => ({
    direction: 'outbound',
    protocol: 'tcp',
    host: 'api.example.test',
    port,
    ...extra,
  });
  const v = evaluateVerdict(allowThenDeny, 'aaaa1111', api(8443), ctx());
  assert.equal(
    [v.verdict, v.decidedBy.rule, v.resolver?.answers, v.resolver?.decidedBy?.rule, v.address],
    ['allow', 'outbound[0]', true, 'outbound[0]', null],
  );
  assert.is(said(allowThenDeny, api(443)), 'deny by outbound[1] (network)');
  const other = evaluateVerdict(allowThenDeny, 'aaaa1111', api(8443, { host: 'web.example.test' }), ctx());
  assert.equal(
    [other.verdict, other.resolver?.answers, other.resolver?.reason, other.decidedBy.rule],
    ['deny', false, 'denied_by_rule', 'outbound[1]'],
  );

  const denyThenAll = kernel({
    policy: policy([
      { action: 'deny', protocol: 'all', destination: 'evil.example.test' },
      { action: 'allow', protocol: 'all' },
    ]),
  });
  const evil = evaluateVerdict(denyThenAll, 'aaaa1111', api(80, { host: 'evil.example.test' }), ctx());
  assert.equal([evil.verdict, evil.resolver?.answers, evil.decidedBy.rule], ['deny', false, 'outbound[0]']);
  assert.is(said(denyThenAll, api(80, { host: 'good.example.test' })), 'allow by outbound[1] (network)');
  // Without the resolver no name is answered; isolation answers none.
  const noDns = evaluateVerdict(allowThenDeny, 'aaaa1111', api(8443), { ...ctx(), resolver: false });
  assert.equal([noDns.verdict, noDns.resolver?.reason], ['deny', 'no_resolver']);
});

test('an address answered for a name is in that name rule set in the kernel: address-only queries find it there', () => {
  const view = kernel(
    {
      policy: policy([
        { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 8443 },
        { action: 'deny', protocol: 'all' },
      ]),
    },
    [{ host: 'api.example.test', addr: X }],
  );
  assert.is(said(view, tcp(X, 8443)), 'allow by outbound[0] (network)');
  assert.is(said(view, tcp(Y, 8443)), 'deny by outbound[1] (network)');
});

test('audit mode: a deny is the verdict, and the connection passes', () => {
  const view = kernel({ policy: policy([{ action: 'deny', protocol: 'all', destination: `${X}/32` }], { mode: 'audit' }) });
  assert.is(said(view, tcp(X, 80)), 'deny by outbound[0] (network) passes');
  assert.is(said(view, tcp(Y, 80)), 'deny by o.default (network) passes');
  assert.is(said(view, tcp('169.254.169.254', 80)), 'deny by o.range (operator)', 'guards drop in audit mode too');
});

test('isolation decides first (level network); no policy: open after the guards; inbound meets the ingress chain', () => {
  const isolated = kernel({ isolated: true, policy: policy([{ action: 'allow', protocol: 'all' }]) });
  assert.is(said(isolated, tcp(X, 80)), 'deny by o.isolate (network)');
  const open = kernel({});
  assert.is(said(open, tcp(X, 80), null), 'allow by o.open (network)');
  const inbound = kernel({
    policy: validateNetworkPolicy({
      name: 'in',
      inbound: [
        { action: 'deny', protocol: 'all', source: '198.51.100.66' },
        { action: 'allow', protocol: 'tcp', source: '198.51.100.0/24', port: 22 },
      ],
    }),
  });
  const q = (address: string): VerdictQuery => ({ direction: 'inbound', protocol: 'tcp', address, port: 22 });
  assert.is(said(inbound, q('198.51.100.66')), 'deny by inbound[0] (network)');
  assert.is(said(inbound, q('198.51.100.7')), 'allow by inbound[1] (network)');
  assert.is(said(inbound, q('10.250.2.9')), 'deny by i.xnet (operator)');
});

test('a policy kept deny-first is evaluated as the kernel holds it: its denies first', () => {
  const kept = {
    ...policy([
      { action: 'allow', protocol: 'tcp', destination: `${X}/32`, port: 8443 },
      { action: 'deny', protocol: 'all' },
    ]),
  };
  kept.order = 'deny-first';
  const view = kernel({ policy: kept });
  assert.is(said(view, tcp(X, 8443), 'deny-first'), 'deny by outbound[1] (network)');
});

test.run();
