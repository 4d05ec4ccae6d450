import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { SandboxRecord } from '../../runtime/store/sandboxes.ts';
import type { AgentRecord } from '../agents/store.ts';
import type { SessionSandboxes } from '../sandboxes.ts';
import type { SessionRecord } from '../sessions/store.ts';

/** The label that ties a sandbox to the agent whose tools run in it. */
export const AGENT_LABEL = 'chat.agent';
/** Where tools work: the sandbox's writable tmpfs (the default `allowedPaths`). */
export const WORKDIR = '/workspace';

/**
 * An agent's tool sandbox: one per agent, inside the agent's session, made on first use through
 * the session's sandbox path (so the department's and session's limits are its ceiling, the
 * session's environment gives its image, variables, files and network policy, and the session's
 * network, if any, is the one it joins) and found again by its label. A sandbox that has stopped
 * (its wall-time limit passed, or someone stopped it) is replaced by a fresh one at the next use.
 */
export class ChatSandboxes {
  readonly #sandboxes: SessionSandboxes;
  readonly #making = new Map<string, Promise<SandboxRecord>>();

  constructor(sandboxes: SessionSandboxes) {
    this.#sandboxes = sandboxes;
  }

  /** The agent's running sandbox, if it has one. */
  current(agent: AgentRecord): SandboxRecord | null {
    return this.#sandboxes.ofSession(agent.sessionId).find((r) => r.labels[AGENT_LABEL] === agent.id && r.status === 'running') ?? null;
  }

  async ensure(caller: Caller, session: SessionRecord, agent: AgentRecord): Promise<SandboxRecord> {
    const have = this.current(agent);
    if (have) return have;
    // One create per agent at a time; a second caller waits for the first one's sandbox.
    const making = this.#making.get(agent.id);
    if (making) return making;
    const p = this.#sandboxes
      .create(caller, {
        name: `chat-${agent.id}`,
        sessionId: session.id,
        departmentId: agent.departmentId,
        labels: { [AGENT_LABEL]: agent.id },
        ...(agent.config.image ? { image: agent.config.image } : {}),
        // A session that names a network means its sandboxes are meant to reach it.
        ...(session.config.networkId ? { securityPolicy: { allowNetwork: true } } : {}),
      })
      .finally(() => this.#making.delete(agent.id));
    this.#making.set(agent.id, p);
    return p;
  }
}
