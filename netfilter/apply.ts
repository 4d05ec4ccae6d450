/**
 * Compile + apply for the runtime: each function is one nft transaction, preceded by a read of
 * the kernel's current state where the compiler needs it (which name sets a network has now).
 * Callers serialize changes to one table (one writer), so the read stays valid until the apply.
 */
import { compileNetwork, compileRemoveNetwork, compileTable } from './compile.ts';
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

/** Creates or updates one network (policy change, isolation) without touching the others. */
export async function applyNetwork(input: NetfilterInput, net: NetworkInput, opts?: NftOptions): Promise<void> {
  const view = await readTable(input.table, opts);
  await applyDocument(compileNetwork(input, net, currentSets(view, net.short)), opts);
}

/** Removes every trace of one network. */
export async function removeNetwork(table: string, net: NetworkInput, opts?: NftOptions): Promise<void> {
  const view = await readTable(table, opts);
  await applyDocument(compileRemoveNetwork(table, net, currentSets(view, net.short)), opts);
}
