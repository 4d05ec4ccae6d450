/**
 * The three ways a document reaches the kernel leave it in exactly the same state: three throwaway
 * tables go through the same life (networks created, policies changed in audit and enforce mode,
 * isolation, resolved addresses, retiring, removal), one fed JSON, one nft's own syntax and one
 * the default (netlink where the document can be encoded), and after every step their listings
 * are compared, both as nft lists them and as the bytecode the kernel holds.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  addResolvedAddresses,
  compileDeleteTable,
  compileNetwork,
  compileRemoveNetwork,
  compileRetire,
  compileTable,
} from '../../../netfilter/compile.ts';
import type { NftDocument } from '../../../netfilter/json.ts';
import { DEFAULT_ALWAYS_DENIED, type NetfilterInput, type NetworkInput } from '../../../netfilter/model.ts';
import { encodeDocument, Unencodable } from '../../../netfilter/netlink-encode.ts';
import { NetlinkHelpers } from '../../../netfilter/netlink-helpers.ts';
import { applyDocument, listTable, NftError, runNft } from '../../../netfilter/nft.ts';
import { networkNameSets } from '../../../netfilter/rules.ts';
import { renderDocument } from '../../../netfilter/text.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { fullPolicy, network } from '../../unit/netfilter/fixtures.ts';
import { nftUnavailable, testTableName } from './helpers.ts';

const test = suite('netfilter text');
const skip = nftUnavailable();
const it = (name: string, fn: () => Promise<void> | void) => (skip ? test.skip(name, fn) : test(name, fn));
if (skip) console.log(`skipping netfilter text tests: ${skip}`);

const J = testTableName();
const X = testTableName();
const N = testTableName();
/** The default path's netlink helpers, as the runtime's firewall owns its own. */
const helpers = new NetlinkHelpers();

test.after(async () => {
  helpers.close();
  if (skip) return;
  for (const t of [J, X, N]) await applyDocument(compileDeleteTable(t));
});

/** The table as the kernel lists it, without what differs by nature: table name, handles, element expiry countdowns. */
async function normalized(table: string): Promise<unknown> {
  const text = JSON.stringify(await listTable(table));
  return JSON.parse(text.replaceAll(`"${table}"`, '"T"'), (key, value: unknown) =>
    key === 'handle' || key === 'expires' ? undefined : value,
  );
}

/** The kernel's bytecode of the table (`nft --debug=netlink`): registers, lengths and all, without handles and expiry countdowns. */
async function bytecode(table: string): Promise<string> {
  const out = await runNft(['--debug=netlink', 'list', 'table', 'inet', table]);
  return out
    .replaceAll(table, 'T')
    .split('\n')
    .filter((l) => !l.startsWith('table inet T {') && !/^\t/.test(l) && l !== '}')
    .map((l) => (l.startsWith('inet T ') ? l.replace(/ \d+( \d+)?$/, '') : l.replace(/expires \d+ms/, '')))
    .join('\n');
}

const input = (table: string): NetfilterInput => ({ table, alwaysDenied: DEFAULT_ALWAYS_DENIED, networks: [] });

/**
 * Applies one step's document to the three tables (JSON, text, default) and compares them.
 * `netlink` says whether the default must have gone over netlink (policy generations do).
 */
async function step(name: string, make: (table: string) => NftDocument, netlink = false): Promise<void> {
  const viaText = make(X);
  assert.ok(renderDocument(viaText).length > 0, `${name}: not renderable as text`);
  await applyDocument(make(J), { format: 'json' });
  await applyDocument(viaText, { format: 'text' });
  const fallbacks: string[] = [];
  const viaDefault = make(N);
  let encodable = true;
  try {
    encodeDocument(viaDefault);
  } catch (err) {
    if (!(err instanceof Unencodable)) throw err;
    encodable = false;
  }
  if (netlink) assert.ok(encodable, `${name}: not encodable for netlink`);
  await applyDocument(viaDefault, { netlink: helpers, onNetlinkFallback: (reason) => fallbacks.push(reason) });
  assert.equal(fallbacks, [], `${name}: the netlink batch was not applied`);
  const json = await normalized(J);
  assert.equal(await normalized(X), json, `${name}: the kernel differs between text and JSON`);
  assert.equal(await normalized(N), json, `${name}: the kernel differs between the default path and JSON`);
  const code = await bytecode(J);
  assert.equal(await bytecode(X), code, `${name}: bytecode differs between text and JSON`);
  assert.equal(await bytecode(N), code, `${name}: bytecode differs between the default path and JSON`);
}

it('every per-network document leaves the same ruleset applied as JSON, as text or over netlink', async () => {
  for (const t of [J, X, N]) await applyDocument(compileTable(input(t)));
  const a0 = network('aaaa1111', 1, fullPolicy());
  const b0 = network('bbbb2222', 2, null, { dns: null, subnetV6: undefined });
  await step('create a (full policy)', (t) => compileNetwork(input(t), a0, 0));
  await step('create b (open, no resolver, v4 only)', (t) => compileNetwork(input(t), b0, 0));

  const audit: NetworkInput = { ...a0, policy: fullPolicy({ mode: 'audit', logging: false, metrics: false }) };
  const sets0 = networkNameSets(a0).map((s) => s.name);
  await step('a: audit mode, generation 1', (t) => compileNetwork(input(t), audit, 1, sets0), true);
  await step('a: resolved addresses with timeouts', (t) =>
    addResolvedAddresses(t, audit, { host: 'pypi.org' }, [
      { addr: '192.0.2.7', timeoutS: 120 },
      { addr: '2001:db8::7', timeoutS: 60 },
    ]),
  );

  const narrowed: NetworkInput = {
    ...a0,
    policy: validateNetworkPolicy({
      name: 'narrow',
      outbound: [
        { action: 'allow', protocol: 'udp', destination: '198.51.100.0/24', port: { from: 1000, to: 2000 } },
        { action: 'deny', protocol: 'icmp', destination: '2001:db8::/32' },
        { action: 'allow', protocol: 'tcp', destination: 'files.example.test', port: 443 },
      ],
    }),
  };
  await step('a: another policy, generation 2', (t) => compileNetwork(input(t), narrowed, 2, sets0), true);
  // Every other shape a policy rule compiles to: prefixes on and off byte boundaries, /0, a bare
  // IPv6 address, single ports and ranges in both directions, protocols without ports.
  const odd: NetworkInput = {
    ...a0,
    policy: validateNetworkPolicy({
      name: 'odd',
      outbound: [
        { action: 'allow', protocol: 'tcp', destination: '198.18.16.0/20', port: 8080 },
        { action: 'deny', protocol: 'udp', destination: '2001:db8:8::/61', port: 53 },
        { action: 'allow', protocol: 'udp', destination: '2001:db8::5', port: { from: 1, to: 1 } },
        { action: 'allow', protocol: 'tcp' },
        { action: 'deny', protocol: 'icmp', destination: '2001:db8:1::/48' },
        { action: 'allow', protocol: 'icmp', destination: '192.0.2.0/25' },
        { action: 'allow', protocol: 'all', destination: '0.0.0.0/0' },
      ],
      inbound: [
        { action: 'allow', protocol: 'udp', source: '203.0.113.0/28', port: { from: 5000, to: 5999 } },
        { action: 'deny', protocol: 'tcp', source: '::/0' },
        { action: 'allow', protocol: 'all', source: 'ci.example.test' },
      ],
    }),
  };
  await step(
    'a: odd shapes, generation 3',
    (t) =>
      compileNetwork(
        input(t),
        odd,
        3,
        networkNameSets(narrowed).map((s) => s.name),
      ),
    true,
  );
  await step('b: isolated, generation 1', (t) => compileNetwork(input(t), { ...b0, isolated: true }, 1), true);
  await step('b: open again, generation 2', (t) => compileNetwork(input(t), b0, 2), true);
  const stale = sets0.filter((s) => !networkNameSets(narrowed).some((n) => n.name === s));
  await step('a: retire generations 0 and 1 and the unused sets', (t) =>
    compileRetire(t, 'aaaa1111', 3, { retired: [0, 1, 2], staleSets: stale }),
  );
  await step('remove b', (t) => compileRemoveNetwork(t, b0, { gens: [0, 1, 2], sets: [] }));
  await step('remove a', (t) =>
    compileRemoveNetwork(t, odd, { gens: [3], sets: [...networkNameSets(narrowed), ...networkNameSets(odd)].map((s) => s.name) }),
  );
});

it('a batch the kernel refuses changes nothing and goes to nft, which explains the refusal', async () => {
  await applyDocument(compileTable(input(N)));
  const before = await bytecode(N);
  const fallbacks: string[] = [];
  // The second rule names a chain that does not exist: the whole batch is refused, the first rule included.
  const doc: NftDocument = {
    nftables: [
      { add: { chain: { family: 'inet', table: N, name: 'probe' } } },
      { add: { rule: { family: 'inet', table: N, chain: 'probe', expr: [{ accept: null }] } } },
      { add: { rule: { family: 'inet', table: N, chain: 'absent_chain', expr: [{ drop: null }] } } },
    ],
  };
  const err = await applyDocument(doc, { netlink: helpers, onNetlinkFallback: (r) => fallbacks.push(r) }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.instance(err, NftError);
  assert.match((err as NftError).stderr, /No such file or directory/);
  assert.equal(fallbacks.length, 1);
  assert.match(fallbacks[0]!, /message 3: ENOENT/);
  assert.is(await bytecode(N), before);
});

it('without a usable netlink helper the same document goes through nft', async () => {
  const fallbacks: string[] = [];
  const doc: NftDocument = {
    nftables: [
      { add: { chain: { family: 'inet', table: N, name: 'probe2' } } },
      { add: { rule: { family: 'inet', table: N, chain: 'probe2', comment: 'p', expr: [{ accept: null }] } } },
    ],
  };
  await applyDocument(doc, { netlink: helpers, perlPath: '/nonexistent/perl', onNetlinkFallback: (r) => fallbacks.push(r) });
  assert.equal(fallbacks.length, 1);
  assert.match(fallbacks[0]!, /ENOENT/);
  assert.match(await runNft(['list', 'chain', 'inet', N, 'probe2']), /accept comment "p"/);
});

it('a helper that does not answer is stopped after the timeout and nft applies the document', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-hang-'));
  const hang = path.join(dir, 'perl');
  writeFileSync(hang, '#!/bin/sh\nexec sleep 30\n', { mode: 0o700 });
  try {
    const fallbacks: string[] = [];
    const doc: NftDocument = { nftables: [{ add: { chain: { family: 'inet', table: N, name: 'probe3' } } }] };
    await applyDocument(doc, { netlink: helpers, perlPath: hang, timeoutMs: 2000, onNetlinkFallback: (r) => fallbacks.push(r) });
    assert.equal(fallbacks, ['netlink helper did not answer in time']);
    assert.match(await runNft(['list', 'chain', 'inet', N, 'probe3']), /chain probe3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('a namespace deleted and made again under the same name gets its batches, not the old one', async () => {
  const ns = `dnl-${N.slice(-6)}`;
  const doc = (chain: string): NftDocument => ({
    nftables: [
      { add: { chain: { family: 'inet', table: N, name: chain } } },
      { add: { rule: { family: 'inet', table: N, chain, expr: [{ accept: null }] } } },
    ],
  });
  const inNs = { netns: ns, netlink: helpers, onNetlinkFallback: (r: string) => assert.unreachable(r) };
  try {
    for (const chain of ['first', 'second']) {
      spawnSync('ip', ['netns', 'del', ns]);
      assert.is(spawnSync('ip', ['netns', 'add', ns]).status, 0);
      await applyDocument(compileTable(input(N)), inNs);
      await applyDocument(doc(chain), inNs);
      assert.match(await runNft(['list', 'chain', 'inet', N, chain], { netns: ns }), /accept/);
    }
    // Gone altogether: no helper is started, and nft says why it cannot apply either.
    spawnSync('ip', ['netns', 'del', ns]);
    const fallbacks: string[] = [];
    const err = await applyDocument(doc('third'), { netns: ns, netlink: helpers, onNetlinkFallback: (r) => fallbacks.push(r) }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(err, NftError);
    assert.equal(fallbacks, [`network namespace ${ns} not found`]);
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
});

test.run();
