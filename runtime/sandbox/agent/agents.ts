import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Engine, AgentMount } from '../../engine/engine.ts';
import type { EventSink } from '../../events.ts';
import type { SandboxStore } from '../../store/sandboxes.ts';
import { SANDBOX_UID } from '../hardening.ts';
import { AGENT_SOCKET_NAME, AgentChannel } from './channel.ts';
import type { AgentClient, AgentLost } from './client.ts';
import { agentLostEvent, reportTampering } from './events.ts';

/** sun_path holds 108 bytes with its NUL; sandbox ids are at most this long. */
const MAX_SOCKET_PATH = 107;
const MAX_SANDBOX_ID = 64;
/** A lost connection is reported only if the sandbox still runs this long after (a sandbox that ends takes its agent with it). */
const LOST_SETTLE_MS = 150;

export interface AgentsDeps {
  engine: Engine;
  store: SandboxStore;
  events: Pick<EventSink, 'emit'>;
  logger: Logger;
  /** The agent executable (absolute). */
  binary: string;
  /** Where each sandbox's channel directory is made. */
  baseDir: string;
}

interface Entry {
  channel: AgentChannel;
  client: AgentClient | null;
  containerId: string | null;
  stopReporting: () => void;
}

/** A channel base directory whose socket paths fit in sun_path: `preferred`, else a short one under the temp dir. */
export function agentBaseDir(preferred: string): string {
  const longest = path.join(path.resolve(preferred), 'x'.repeat(MAX_SANDBOX_ID), AGENT_SOCKET_NAME);
  if (Buffer.byteLength(longest) <= MAX_SOCKET_PATH) return path.resolve(preferred);
  const hash = createHash('sha256').update(path.resolve(preferred)).digest('hex').slice(0, 12);
  return path.join(tmpdir(), `director-${hash}`);
}

/**
 * The exec agents of the sandboxes this Director created (docs/agent.md): one channel per
 * sandbox, opened before its container is created, the agent's client once it said hello.
 * Executes ask {@link client} for a live agent and fall back to `docker exec` without one.
 * A lost agent (gone, unresponsive, or speaking something else than the protocol) of a
 * sandbox that still runs is reported as `agent_lost` with the fallback taken
 * (`docker_exec`); connections from sandbox processes as `agent_tampered`.
 */
export class Agents {
  readonly #deps: AgentsDeps;
  readonly #live = new Map<string, Entry>();
  readonly #byContainer = new Map<string, string>();

  constructor(deps: AgentsDeps) {
    this.#deps = deps;
  }

  /** Opens the sandbox's channel; the returned mount goes into its container spec. */
  async open(sandboxId: string, workspace: string): Promise<AgentMount> {
    const channel = await AgentChannel.open({ baseDir: this.#deps.baseDir, sandboxId, uid: SANDBOX_UID, gid: SANDBOX_UID });
    const stopReporting = reportTampering(channel, this.#deps.events, { workspace, sandboxId });
    this.#live.set(sandboxId, { channel, client: null, containerId: null, stopReporting });
    return { binary: this.#deps.binary, channelDir: channel.dir };
  }

  /**
   * Waits for the agent of a started container to say hello. A sandbox whose agent does not
   * connect in time runs (its executes use `docker exec`) and is reported as `agent_lost`.
   */
  async connected(sandboxId: string, containerId: string, timeoutMs = 10_000): Promise<void> {
    const entry = this.#live.get(sandboxId);
    if (!entry) return;
    entry.containerId = containerId;
    this.#byContainer.set(containerId, sandboxId);
    try {
      const client = await entry.channel.agent(timeoutMs);
      entry.client = client;
      client.once('lost', (lost) => this.#lost(sandboxId, lost));
    } catch (err) {
      this.#report(sandboxId, { reason: 'unresponsive', detail: (err as Error).message });
    }
  }

  /** The sandbox's agent when it is usable, else null (run through `docker exec`). */
  client(sandboxId: string): AgentClient | null {
    const c = this.#live.get(sandboxId)?.client;
    return c?.alive ? c : null;
  }

  /** {@link client} by container id. */
  clientOfContainer(containerId: string): AgentClient | null {
    const id = this.#byContainer.get(containerId);
    return id ? this.client(id) : null;
  }

  /** The sandbox ended (or its create failed): its channel closes and its directory goes. */
  async close(sandboxId: string): Promise<void> {
    const entry = this.#live.get(sandboxId);
    if (!entry) return;
    this.#live.delete(sandboxId);
    if (entry.containerId) this.#byContainer.delete(entry.containerId);
    entry.stopReporting();
    await entry.channel.close().catch((err: unknown) => this.#deps.logger.warn({ err, sandboxId }, 'could not close an agent channel'));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#live.keys()].map((id) => this.close(id)));
  }

  #lost(sandboxId: string, lost: AgentLost): void {
    // A sandbox that is ending takes its agent with it: that is no loss worth an event.
    setTimeout(() => void this.#reportIfRunning(sandboxId, lost), LOST_SETTLE_MS).unref();
  }

  async #reportIfRunning(sandboxId: string, lost: AgentLost): Promise<void> {
    const entry = this.#live.get(sandboxId);
    if (!entry?.containerId) return;
    const state = await this.#deps.engine.inspectContainer(entry.containerId).catch(() => null);
    if (!state?.running || this.#live.get(sandboxId) !== entry) return;
    this.#report(sandboxId, lost);
  }

  #report(sandboxId: string, lost: AgentLost): void {
    const rec = this.#deps.store.byId(sandboxId);
    if (!rec || (rec.status !== 'running' && rec.status !== 'creating')) return;
    this.#deps.logger.warn({ sandboxId, reason: lost.reason, detail: lost.detail }, 'exec agent lost; executes use docker exec');
    this.#deps.events.emit(agentLostEvent({ workspace: rec.workspace, sandboxId }, lost, 'docker_exec'));
  }
}

/** Whether executes can go through agents here: switched on, a local engine, and the executable built. */
export function agentsUsable(opts: { setting: 'on' | 'off'; local: boolean; binary: string }): boolean {
  return opts.setting === 'on' && opts.local && existsSync(opts.binary);
}
