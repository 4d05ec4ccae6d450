/**
 * How long compiling and applying takes as a policy grows: 10, 100 and 1000 rules, whole table
 * and per-network update (compile: the next generation; apply: `applyNetwork`, which reads the
 * table, applies the generation and retires the previous one at once, unlike the runtime's
 * Firewall, which retires later). Printed, not asserted: timings depend on the machine.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { applyNetwork, readTable } from '../../../netfilter/apply.ts';
import { compileDeleteTable, compileNetwork, compileTable } from '../../../netfilter/compile.ts';
import { DEFAULT_ALWAYS_DENIED, type NetfilterInput } from '../../../netfilter/model.ts';
import { applyDocument } from '../../../netfilter/nft.ts';
import { NetlinkHelpers } from '../../../netfilter/netlink-helpers.ts';
import { syntheticPolicy } from '../../../policies/synthetic.ts';
import { network } from '../../unit/netfilter/fixtures.ts';
import { nftUnavailable, testTableName } from './helpers.ts';

const test = suite('netfilter bench');
const skip = nftUnavailable();
const it = (name: string, fn: () => Promise<void> | void) => (skip ? test.skip(name, fn) : test(name, fn));
if (skip) console.log(`skipping netfilter bench: ${skip}`);
const T = testTableName();

/** Per-network changes go over netlink, as the runtime's firewall applies them. */
const opts = { netlink: new NetlinkHelpers() };

test.after(async () => {
  opts.netlink.close();
  if (!skip) await applyDocument(compileDeleteTable(T));
});

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

it('compile + apply time for 10, 100 and 1000 rules', async () => {
  const rows: string[] = [];
  for (const n of [10, 100, 1000]) {
    const input: NetfilterInput = {
      table: T,
      alwaysDenied: DEFAULT_ALWAYS_DENIED,
      networks: [network('bench', 1, syntheticPolicy(n)), network('other', 2, null)],
    };
    let t = process.hrtime.bigint();
    const doc = compileTable(input);
    const compileMs = ms(t);
    t = process.hrtime.bigint();
    await applyDocument(doc, opts);
    const applyMs = ms(t);
    const changed = { ...input.networks[0]!, policy: syntheticPolicy(n, { mode: 'audit' }) };
    t = process.hrtime.bigint();
    const netDoc = compileNetwork(input, changed, 1);
    const netCompileMs = ms(t);
    t = process.hrtime.bigint();
    await applyNetwork(input, changed, opts);
    const netApplyMs = ms(t);
    const view = await readTable(T);
    assert.is(view.networks.bench!.outbound.length, n);
    rows.push(
      `${String(n).padStart(5)} rules: table ${doc.nftables.length} cmds compile ${compileMs.toFixed(1)} ms + apply ${applyMs.toFixed(0)} ms; ` +
        `network update ${netDoc.nftables.length} cmds compile ${netCompileMs.toFixed(1)} ms + read/apply/retire ${netApplyMs.toFixed(0)} ms`,
    );
  }
  console.log(`\n[bench] netfilter\n${rows.join('\n')}`);
});

test.run();
