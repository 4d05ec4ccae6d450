/**
 * Documents applied as nft's own syntax leave the kernel exactly as the same documents applied as
 * JSON: two throwaway tables go through the same life (networks created, policies changed in
 * audit and enforce mode, isolation, resolved addresses, retiring, removal), one fed JSON and one
 * text, and after every step their listings are compared.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addResolvedAddresses, compileDeleteTable, compileNetwork, compileRemoveNetwork, compileRetire, compileTable } from '../../../netfilter/compile.ts';
import type { NftDocument } from '../../../netfilter/json.ts';
import { DEFAULT_ALWAYS_DENIED, type NetfilterInput, type NetworkInput } from '../../../netfilter/model.ts';
import { applyDocument, listTable } from '../../../netfilter/nft.ts';
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

test.after(async () => {
  if (skip) return;
  await applyDocument(compileDeleteTable(J));
  await applyDocument(compileDeleteTable(X));
});

/** The table as the kernel lists it, without what differs by nature: table name, handles, element expiry countdowns. */
async function normalized(table: string): Promise<unknown> {
  const text = JSON.stringify(await listTable(table));
  return JSON.parse(text.replaceAll(`"${table}"`, '"T"'), (key, value: unknown) => (key === 'handle' || key === 'expires' ? undefined : value));
}

const input = (table: string): NetfilterInput => ({ table, alwaysDenied: DEFAULT_ALWAYS_DENIED, networks: [] });

/** Applies one step's document to both tables (JSON to one, text to the other) and compares them. */
async function step(name: string, make: (table: string) => NftDocument): Promise<void> {
  const viaText = make(X);
  assert.ok(renderDocument(viaText).length > 0, `${name}: not renderable as text`);
  await applyDocument(make(J), { format: 'json' });
  await applyDocument(viaText);
  assert.equal(await normalized(X), await normalized(J), `${name}: the kernel differs between text and JSON`);
}

it('every per-network document leaves the same ruleset whether applied as text or as JSON', async () => {
  await applyDocument(compileTable(input(J)));
  await applyDocument(compileTable(input(X)));
  const a0 = network('aaaa1111', 1, fullPolicy());
  const b0 = network('bbbb2222', 2, null, { dns: null, subnetV6: undefined });
  await step('create a (full policy)', (t) => compileNetwork(input(t), a0, 0));
  await step('create b (open, no resolver, v4 only)', (t) => compileNetwork(input(t), b0, 0));

  const audit: NetworkInput = { ...a0, policy: fullPolicy({ mode: 'audit', logging: false, metrics: false }) };
  const sets0 = networkNameSets(a0).map((s) => s.name);
  await step('a: audit mode, generation 1', (t) => compileNetwork(input(t), audit, 1, sets0));
  await step('a: resolved addresses with timeouts', (t) => addResolvedAddresses(t, audit, { host: 'pypi.org' }, [{ addr: '192.0.2.7', timeoutS: 120 }, { addr: '2001:db8::7', timeoutS: 60 }]));

  const narrowed: NetworkInput = { ...a0, policy: validateNetworkPolicy({ name: 'narrow', outbound: [
    { action: 'allow', protocol: 'udp', destination: '198.51.100.0/24', port: { from: 1000, to: 2000 } },
    { action: 'deny', protocol: 'icmp', destination: '2001:db8::/32' },
    { action: 'allow', protocol: 'tcp', destination: 'files.example.test', port: 443 },
  ] }) };
  await step('a: another policy, generation 2', (t) => compileNetwork(input(t), narrowed, 2, sets0));
  await step('b: isolated, generation 1', (t) => compileNetwork(input(t), { ...b0, isolated: true }, 1));
  const stale = sets0.filter((s) => !networkNameSets(narrowed).some((n) => n.name === s));
  await step('a: retire generations 0 and 1 and the unused sets', (t) => compileRetire(t, 'aaaa1111', 2, { retired: [0, 1], staleSets: stale }));
  await step('remove b', (t) => compileRemoveNetwork(t, { ...b0, isolated: true }, { gens: [0, 1], sets: [] }));
  await step('remove a', (t) => compileRemoveNetwork(t, narrowed, { gens: [0, 1, 2], sets: networkNameSets(narrowed).map((s) => s.name) }));
});

test.run();
