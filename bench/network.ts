/**
 * Network policy benchmarks, from one run on this machine:
 * - policy apply → effective (the transaction committed) for 10/100/1000 rules, with one network
 *   loaded and with 500, as p50/p99, beside the same changes applied through `nft` in its own
 *   syntax and as JSON instead of over netlink (interleaved in the same run);
 * - TCP throughput between two sandboxes on one network with Director's full ruleset (a 100-rule
 *   policy in force) vs. without Director's table, as a ratio from the same run.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { DEFAULT_ALWAYS_DENIED } from '../netfilter/model.ts';
import { shortName } from '../netfilter/names.ts';
import { runNft, tableExists, type NftOptions } from '../netfilter/nft.ts';
import { syntheticPolicy } from '../policies/synthetic.ts';
import { systemClock } from '../core/clock.ts';
import { createEventSink } from '../runtime/events.ts';
import { Firewall } from '../runtime/network/firewall.ts';
import { LABEL } from '../runtime/sandbox/hardening.ts';
import { openDb } from '../core/db.ts';
import { NetworkStore, type NetworkRecord } from '../runtime/store/networks.ts';
import { summarize } from './stats.ts';
import { benchRuntime } from './runtime.ts';

const log = pino({ level: 'silent' });

function record(i: number): NetworkRecord {
  const id = `net_bench${String(i).padStart(11, '0')}`;
  const short = shortName(id);
  return {
    id,
    workspace: 'wsp_bench',
    name: `bench-${i}`,
    short,
    bridge: `dirb-${short}`,
    subnet: `10.${200 + (i >> 8)}.${i & 255}.0/24`,
    gateway: `10.${200 + (i >> 8)}.${i & 255}.1`,
    enableDns: false,
    internal: false,
    isolated: false,
    privateFor: null,
    engineId: null,
    policy: null,
    labels: {},
    status: 'ready',
    createdMs: i,
    updatedMs: i,
    deletedMs: null,
  };
}

async function applyLatency(networkCount: number, ruleCounts: number[], iterations: number) {
  const table = `director_bench_${randomBytes(3).toString('hex')}`;
  const db = openDb('', ':memory:');
  const store = new NetworkStore(db);
  const events = createEventSink(db, systemClock);
  // Changes rotate between the default path (netlink, what the firewall uses), `nft` with its own
  // syntax and `nft` with JSON, so all three are measured in this run under the same conditions.
  const nft: NftOptions = {
    onNetlinkFallback: (reason) => {
      throw new Error(`netlink path not taken: ${reason}`);
    },
  };
  const fw = new Firewall({
    table,
    alwaysDenied: DEFAULT_ALWAYS_DENIED,
    dnsPort: 53,
    store,
    events,
    clock: systemClock,
    logger: log,
    checkIntervalMs: 3_600_000,
    nft,
  });
  try {
    for (let i = 0; i < networkCount; i++) store.insert({ ...record(i), policy: syntheticPolicy(10) });
    const t0 = performance.now();
    await fw.boot();
    const bootMs = performance.now() - t0;
    const target = store.byId(record(0).id)!;
    type Summary = ReturnType<typeof summarize>;
    const rows: Array<{ rules: number; netlink: Summary; text: Summary; json: Summary; retire: Summary }> = [];
    const formats = ['auto', 'text', 'json'] as const;
    for (const rules of ruleCounts) {
      const variants = [syntheticPolicy(rules), syntheticPolicy(rules, { denyEvery: 4 })];
      const samples: Record<(typeof formats)[number], number[]> = { auto: [], text: [], json: [] };
      const retire: number[] = [];
      for (let i = 0; i < formats.length * (iterations + 2); i++) {
        const policy = variants[i % 2]!;
        const format = formats[Math.floor(i / 2) % formats.length]!;
        nft.format = format;
        const t = performance.now();
        store.update(target.id, Date.now(), { policy });
        // Resolves when the new generation is in force.
        await fw.sync({ ...target, policy });
        const t1 = performance.now();
        // Deleting the replaced generation, which the firewall does on its own shortly after; timed apart.
        nft.format = 'auto';
        await fw.settle();
        if (i >= 2 * formats.length) {
          samples[format].push(t1 - t);
          if (format === 'auto') retire.push(performance.now() - t1);
        }
      }
      rows.push({
        rules,
        netlink: summarize(samples.auto),
        text: summarize(samples.text),
        json: summarize(samples.json),
        retire: summarize(retire),
      });
    }
    return { bootMs, rows };
  } finally {
    fw.close();
    if (await tableExists(table)) await runNft(['delete', 'table', 'inet', table]);
    db.close();
  }
}

async function throughput(): Promise<{ withMbps: number; withoutMbps: number }> {
  const { rt, dir } = benchRuntime({ poolSize: 0, nftCheckIntervalMs: 3_600_000 }, log);
  const caller = { workspace: 'wsp_bench' };
  try {
    await rt.start();
    const a = await rt.networks!.manager.create(caller, { name: 'tput', enableDNS: false });
    // A realistic policy in force on the network: 100 rules plus isolation guards.
    await rt.networks!.manager.applyPolicy(caller, a.id, syntheticPolicy(100));
    const spec = { image: 'director/base:latest', securityPolicy: { allowNetwork: true }, resourceLimits: { cpu: 1 } };
    const server = await rt.sandboxes.create({ ...spec, networkMode: a.id }, caller);
    const client = await rt.sandboxes.create({ ...spec, networkMode: a.id }, caller);
    const MB = 400;
    const recv = `import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9000)); s.listen()\nwhile True:\n    c,_=s.accept()\n    while c.recv(1<<20): pass\n    c.close()`;
    void rt.executor.run(caller, server.id, { command: ['python3', '-c', recv], timeout: 600_000 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const send = `import socket, time\nb=bytes(1<<20); s=socket.create_connection(("${server.ipAddress}", 9000), timeout=10); t=time.time()\nfor _ in range(${MB}): s.sendall(b)\ns.close(); print(${MB}*8/(time.time()-t))`;
    const measure = async () => {
      const r = await rt.executor.run(caller, client.id, { command: ['python3', '-c', send], timeout: 120_000 });
      const v = Number(r.stdout.trim());
      if (!Number.isFinite(v)) throw new Error(`throughput run failed: ${r.stdout} ${r.stderr}`);
      return v;
    };
    const table = rt.config.nftTable;
    await measure();
    const withs: number[] = [];
    const withouts: number[] = [];
    for (let i = 0; i < 3; i++) {
      withs.push(await measure());
      await runNft(['delete', 'table', 'inet', table]);
      withouts.push(await measure());
      await rt.networks!.firewall.boot();
      rt.networks!.firewall.close();
    }
    const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    return { withMbps: med(withs), withoutMbps: med(withouts) };
  } finally {
    await rt.close();
    for (const c of await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })) await rt.engine.removeContainer(c.id);
    for (const n of await rt.engine.listNetworks({ 'director.runtime': rt.config.runtimeName })) await rt.engine.removeNetwork(n.id);
    if (await tableExists(rt.config.nftTable)) await runNft(['delete', 'table', 'inet', rt.config.nftTable]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchNetwork(): Promise<void> {
  const iterations = Number(process.env.BENCH_POLICY_ITERATIONS ?? 30);
  if (process.env.BENCH_NETWORK_LATENCY === '0') return printThroughput();
  console.log(
    '\npolicy apply → effective (transaction committed), ms; p50/p99 over netlink (the default), then the same changes through nft',
  );
  console.log(
    `${'networks'.padEnd(10)} ${'rules'.padStart(6)} ${'p50'.padStart(8)} ${'p99'.padStart(8)}   ${'nft text p50'.padStart(12)} ${'nft JSON p50'.padStart(12)}   retire old generation p50 (later, off the critical path)`,
  );
  for (const networks of [1, 500]) {
    const { bootMs, rows } = await applyLatency(networks, [10, 100, 1000], iterations);
    for (const r of rows) {
      console.log(
        `${String(networks).padEnd(10)} ${String(r.rules).padStart(6)} ${r.netlink.p50.toFixed(1).padStart(8)} ${r.netlink.p99.toFixed(1).padStart(8)}   ${r.text.p50.toFixed(1).padStart(12)} ${r.json.p50.toFixed(1).padStart(12)}   ${r.retire.p50.toFixed(1)}`,
      );
    }
    console.log(`  (boot rebuild of ${networks} network(s): ${bootMs.toFixed(0)} ms)`);
  }
  console.log('targets: 100 rules ≤ 20 ms p50; 1000 rules ≤ 100 ms p50');
  if (process.env.BENCH_NETWORK_THROUGHPUT === '0') return;
  await printThroughput();
}

async function printThroughput(): Promise<void> {
  const t = await throughput();
  console.log(
    `\nsandbox → sandbox TCP throughput: with Director's table ${t.withMbps.toFixed(0)} Mbit/s, without ${t.withoutMbps.toFixed(0)} Mbit/s, ratio ${(t.withMbps / t.withoutMbps).toFixed(3)} (target ≥ 0.95)`,
  );
}
