/**
 * Benchmarks: `npm run bench [name ...]` (names: sandbox, pool, pool-trace, network, events, api, checkpoint, workflow, chat, agent). Each prints its figures with the
 * raw floor measured in the same run and the ratio to it.
 */
import { benchSandbox } from './sandbox.ts';
import { benchPool } from './pool.ts';
import { benchPoolTrace } from './pool-trace.ts';
import { benchNetwork } from './network.ts';
import { benchEvents } from './events.ts';
import { benchApi } from './api.ts';
import { benchCheckpoint } from './checkpoint.ts';
import { benchWorkflow } from './workflow.ts';
import { benchChat } from './chat.ts';
import { benchAgent } from './agent.ts';

const all: Record<string, () => Promise<void>> = {
  sandbox: benchSandbox,
  pool: benchPool,
  'pool-trace': benchPoolTrace,
  network: benchNetwork,
  events: benchEvents,
  api: benchApi,
  checkpoint: benchCheckpoint,
  workflow: benchWorkflow,
  chat: benchChat,
  agent: benchAgent,
};
const which = process.argv.slice(2);
for (const name of which.length ? which : Object.keys(all)) {
  const fn = all[name];
  if (!fn) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(all).join(', ')}`);
    process.exit(2);
  }
  await fn();
}
