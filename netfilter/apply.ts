/**
 * Compile + apply for the runtime: each function is one nft transaction, preceded by a read of
 * the kernel's current state where the compiler needs it (which name sets a network has now).
 * Callers serialize changes to one table (one writer), so the read stays valid until the apply.
 */
import { compileNetwork, compileRemoveNetwork, compileRetire, compileTable } from './compile.ts';
import { unusedNameSets } from './rules.ts';
import type { NetfilterInput, NetworkInput } from './model.ts';
import { applyDocument, listTable, type NftOptions } from './nft.ts';
import { parseTable, type TableView } from './readback.ts';

/** The table as the kernel has it. */
export async function readTable(table: string, opts?: NftOptions): Promise<TableView> {
  return parseTable(await listTable(table, opts));
}

/** Replaces Director's whole table (boot). */
export async function applyTable(input: NetfilterInput, opts?: NftOptions): Promise<void> {
  await applyDocument(compileTable(input), opts);
}

const currentSets = (view: TableView, short: string): string[] => Object.keys(view.networks[short]?.sets ?? {});

/**
 * Creates or updates one network (policy change, isolation) without touching the others: the next
 * generation is put in force, then the earlier ones and unused name sets are retired in a second
 * transaction. The runtime's `Firewall` does the same with its own bookkeeping, and retires
 * later, off the critical path.
 */
export async function applyNetwork(input: NetfilterInput, net: NetworkInput, opts?: NftOptions): Promise<void> {
  const view = await readTable(input.table, opts);
  const gens = view.networks[net.short]?.generations ?? [];
  const gen = gens.length ? Math.max(...gens) + 1 : 0;
  const sets = currentSets(view, net.short);
  await applyDocument(compileNetwork(input, net, gen, sets), opts);
  const staleSets = unusedNameSets(net, sets);
  if (gens.length || staleSets.length) await applyDocument(compileRetire(input.table, net.short, gen, { retired: gens, staleSets }), opts);
}

/** Removes every trace of one network. */
export async function removeNetwork(table: string, net: NetworkInput, opts?: NftOptions): Promise<void> {
  const view = await readTable(table, opts);
  const n = view.networks[net.short];
  await applyDocument(compileRemoveNetwork(table, net, { gens: n?.generations ?? [], sets: currentSets(view, net.short) }), opts);
}
