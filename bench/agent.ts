/**
 * `execute echo` round trip on a running sandbox (call → exit status with all output), three
 * ways in the same run, each on its own busybox sandbox made as Director makes them:
 * - through the agent (its channel socket; images/agent/, runtime/sandbox/agent/);
 * - through today's execute path: an armed launcher when there is one (runtime/sandbox/launcher.ts),
 *   else a plain exec, re-armed as the executor does;
 * - a plain `docker exec` (the floor the launcher was built to beat).
 * The API cases are timed by a client in another process, as a user's client is (`remote-client.ts`).
 * Back to back and spaced (BENCH_AGENT_SPACING_MS apart), in rounds whose case order rotates,
 * so drift of this shared machine's speed spreads over all three. Targets (issue 18): p50 ≤ 5 ms,
 * p99 ≤ 20 ms through the agent; 100 back-to-back executes ≤ 10 ms each on average.
 */
import type { Engine, ExecHandle } from '../runtime/engine/engine.ts';
import type { AgentClient } from '../runtime/sandbox/agent/client.ts';
import { SANDBOX_USER } from '../runtime/sandbox/hardening.ts';
import { Launchers } from '../runtime/sandbox/launcher.ts';
import { agentLab } from '../test/helpers/agent.ts';
import { http, startServer, stopServer, type Server } from './api.ts';
import { startRemoteClient, type RemoteClient } from './remote-client.ts';
import { printTable, summarize } from './stats.ts';

const ROUNDS = Number(process.env.BENCH_AGENT_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_AGENT_SAMPLES ?? 20);
const SPACING_MS = Number(process.env.BENCH_AGENT_SPACING_MS ?? 300);
const CMD = ['echo', 'hi'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function drain(h: ExecHandle): Promise<string> {
  let out = '';
  h.stdout.on('data', (d: Buffer) => (out += d.toString()));
  h.stderr.resume();
  const [{ exitCode }] = await Promise.all([h.wait(), new Promise((r) => h.stdout.once('end', r))]);
  if (exitCode !== 0 || out !== 'hi\n') throw new Error(`unexpected result ${exitCode} ${JSON.stringify(out)}`);
  return out;
}

/** A case's `once` may return its own measurement (ms), taken where the request was made. */
type Case = { name: string; once: () => Promise<number | void> };

/**
 * `POST /v1/sandboxes/{id}/execute` (JSON result) on a Director whose sandboxes run the agent, or
 * not (DIRECTOR_EXEC_AGENT=off), from a client in another process (`remote-client.ts`), timed there.
 */
async function viaApi(s: Server, client: RemoteClient, name: string): Promise<Case> {
  const created = await http<{ data: { id: string } }>(s.port, 'POST', '/v1/sandboxes', s.token, {});
  const p = `/v1/sandboxes/${created.body.data.id}/execute`;
  const headers = { authorization: `Bearer ${s.token}` };
  return {
    name,
    once: async () => {
      const res = await client.request({ port: s.port, method: 'POST', path: p, headers, body: { command: CMD } });
      const data = (JSON.parse(res.text) as { data?: { stdout: string; exitCode: number } }).data;
      if (data?.stdout !== 'hi\n' || data.exitCode !== 0) throw new Error(`execute answered ${res.status}`);
      return res.ms;
    },
  };
}

function viaAgent(agent: AgentClient): Case {
  return { name: 'agent', once: async () => void (await drain(agent.exec({ argv: CMD, timeoutMs: 10_000 }))) };
}

function viaLauncher(engine: Engine, containerId: string, launchers: Launchers): Case {
  return {
    name: 'launcher (today)',
    once: async () => {
      let h = await launchers.take(containerId, CMD, {}, undefined, undefined);
      if (!h) {
        h = await engine.exec(containerId, { cmd: CMD, env: {}, user: SANDBOX_USER });
        launchers.rearmAfter(containerId, h);
      }
      await drain(h);
    },
  };
}

function viaDockerExec(engine: Engine, containerId: string): Case {
  return {
    name: 'docker exec',
    once: async () => void (await drain(await engine.exec(containerId, { cmd: CMD, env: {}, user: SANDBOX_USER }))),
  };
}

export async function benchAgent(): Promise<void> {
  console.log(`execute echo round trip on a running sandbox (${ROUNDS} rounds × ${PER_ROUND} samples per case and mode)`);
  const lab = agentLab();
  const servers: Server[] = [];
  const client = await startRemoteClient();
  try {
    const withAgent = await startServer({ poolSize: 0, execAgent: 'on' });
    servers.push(withAgent);
    const withoutAgent = await startServer({ poolSize: 0, execAgent: 'off' });
    servers.push(withoutAgent);
    if (!withAgent.rt.agents) throw new Error('the agent is not in use: build it (images/agent/build.sh)');
    const [sb, launcherBox, plainBox] = await Promise.all([lab.sandbox(), lab.plain(), lab.plain()]);
    const launchers = new Launchers(lab.engine);
    launchers.arm(launcherBox);
    const cases = [
      viaAgent(sb.agent!),
      viaLauncher(lab.engine, launcherBox, launchers),
      viaDockerExec(lab.engine, plainBox),
      await viaApi(withAgent, client, 'API, agent'),
      await viaApi(withoutAgent, client, 'API, launcher (DIRECTOR_EXEC_AGENT=off)'),
    ];
    const samples = new Map<string, number[]>();
    const record = (key: string, ms: number) => samples.set(key, [...(samples.get(key) ?? []), ms]);
    for (const c of cases) for (let i = 0; i < 5; i++) await c.once(); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      const order = cases.map((_, i) => cases[(i + round) % cases.length]!);
      for (const c of order) {
        for (let i = 0; i < PER_ROUND; i++) {
          const t0 = performance.now();
          const own = await c.once();
          record(`${c.name}|back to back`, own ?? performance.now() - t0);
        }
        for (let i = 0; i < PER_ROUND; i++) {
          await sleep(SPACING_MS);
          const t0 = performance.now();
          const own = await c.once();
          record(`${c.name}|spaced`, own ?? performance.now() - t0);
        }
      }
    }
    // 20 at once through the agent: each one's round trip.
    const conc: number[] = [];
    for (let i = 0; i < 5; i++)
      conc.push(
        ...(await Promise.all(
          Array.from({ length: 20 }, async () => {
            const t0 = performance.now();
            await cases[0]!.once();
            return performance.now() - t0;
          }),
        )),
      );
    const sum = (k: string) => summarize(samples.get(k) ?? []);
    const rows: Parameters<typeof printTable>[1] = [];
    for (const mode of ['back to back', 'spaced']) {
      const floor = sum(`docker exec|${mode}`);
      for (const c of cases) rows.push([`${c.name}, ${mode}`, sum(`${c.name}|${mode}`), c.name === 'docker exec' ? null : floor]);
    }
    rows.push(['agent, 20 at once (each)', summarize(conc), null]);
    printTable('execute echo → exit status and output (ms); ratio vs plain docker exec', rows);
    const b2b = sum('API, agent|back to back');
    const spaced = sum('API, agent|spaced');
    console.log(
      `targets (through the API, agent): p50 ≤ 5 ms (${b2b.p50.toFixed(1)} back to back, ${spaced.p50.toFixed(1)} spaced), p99 ≤ 20 ms (${b2b.p99.toFixed(1)}, ${spaced.p99.toFixed(1)}), back-to-back mean ≤ 10 ms (${b2b.mean.toFixed(1)})`,
    );
  } finally {
    await client.close();
    for (const s of servers) await stopServer(s);
    await lab.cleanup();
  }
}
