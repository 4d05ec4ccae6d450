/**
 * Sandboxes whose main process is Director's agent, made the way Director makes them (the
 * hardening floor of `buildContainerSpec`, then `withAgent`), for the agent's integration
 * tests and bench. Every container carries this run's runtime label, so `cleanup` removes
 * exactly what the file made, and every channel directory lives under one temp dir.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../runtime/config.ts';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { AgentChannel } from '../../runtime/sandbox/agent/channel.ts';
import type { AgentClient, AgentClientOptions } from '../../runtime/sandbox/agent/client.ts';
import type { AgentExecOptions, AgentExit } from '../../runtime/sandbox/agent/exec.ts';
import { withAgent } from '../../runtime/sandbox/agent/mount.ts';
import { SANDBOX_UID, buildContainerSpec } from '../../runtime/sandbox/hardening.ts';
import { resolveSpec } from '../../runtime/sandbox/spec.ts';
import { removeContainers } from './runtime.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

/** Builds the agent when its sources changed (images/agent/build.sh) and returns its path. */
export function buildAgent(): string {
  return execFileSync(path.join(root, 'images/agent/build.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export interface AgentSandbox {
  sandboxId: string;
  containerId: string;
  channel: AgentChannel;
  /** Null when `waitForAgent: false`. */
  agent: AgentClient | null;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** stdout and stderr in arrival order, tagged. */
  order: Array<['stdout' | 'stderr', string]>;
  exit: AgentExit;
}

/** Runs one exec to its end and collects its output. */
export async function run(agent: AgentClient, opts: AgentExecOptions, stdin?: string): Promise<RunResult> {
  const e = agent.exec({ timeoutMs: 10_000, ...opts, ...(stdin !== undefined ? { stdin: true } : {}) });
  const order: RunResult['order'] = [];
  const out = { stdout: '', stderr: '' };
  for (const name of ['stdout', 'stderr'] as const)
    e[name].on('data', (d: Buffer) => {
      out[name] += d.toString();
      order.push([name, d.toString()]);
    });
  if (stdin !== undefined) e.stdin!.end(stdin);
  const exit = await e.exit;
  return { ...out, order, exit };
}

export interface AgentLab {
  binary: string;
  engine: DockerEngine;
  runtimeName: string;
  /** Creates, starts and (unless told not to) waits for the agent of one sandbox. */
  sandbox(opts?: {
    image?: string;
    command?: string[];
    request?: Record<string, unknown>;
    /** Another executable mounted as the agent (a hostile one). */
    binary?: string;
    waitForAgent?: boolean;
    client?: AgentClientOptions;
  }): Promise<AgentSandbox>;
  /** A sandbox as Director makes it today (`sleep infinity`, no agent): its container id. */
  plain(image?: string): Promise<string>;
  cleanup(): Promise<void>;
}

export function agentLab(): AgentLab {
  const binary = buildAgent();
  const dir = mkdtempSync(path.join(tmpdir(), 'director-agent-'));
  const runtimeName = `test-agent-${randomBytes(4).toString('hex')}`;
  const config = loadConfig({}, { dataDir: dir, runtimeName, defaultImage: 'director/busybox:latest' });
  const engine = new DockerEngine();
  const channels: AgentChannel[] = [];
  return {
    binary,
    engine,
    runtimeName,
    async sandbox(opts = {}) {
      const sandboxId = `sbx_${randomBytes(6).toString('hex')}`;
      const spec = resolveSpec({ image: opts.image ?? 'director/busybox:latest', ...opts.request }, config);
      const channel = await AgentChannel.open({
        baseDir: path.join(dir, 'agent'),
        sandboxId,
        uid: SANDBOX_UID,
        ...(opts.client ? { client: opts.client } : {}),
      });
      channels.push(channel);
      const base = buildContainerSpec(
        spec,
        { sandboxId, workspace: 'wsp_test', runtimeName, network: { mode: 'none' }, imageWorkdir: '/workspace' },
        config,
      );
      const containerId = await engine.createContainer(
        withAgent(base, { binary: opts.binary ?? binary, channelDir: channel.dir }, opts.command ?? null),
      );
      await engine.startContainer(containerId);
      const agent = opts.waitForAgent === false ? null : await channel.agent(10_000);
      return { sandboxId, containerId, channel, agent };
    },
    async plain(image = 'director/busybox:latest') {
      const sandboxId = `sbx_${randomBytes(6).toString('hex')}`;
      const spec = resolveSpec({ image }, config);
      const ctx = { sandboxId, workspace: 'wsp_test', runtimeName, network: { mode: 'none' as const }, imageWorkdir: '/workspace' };
      const containerId = await engine.createContainer(buildContainerSpec(spec, ctx, config));
      await engine.startContainer(containerId);
      return containerId;
    },
    async cleanup() {
      await removeContainers(engine, runtimeName);
      await Promise.all(channels.map((c) => c.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
