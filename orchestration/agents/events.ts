/**
 * Per-agent event ring buffers, as the agent-platform seed has them: each agent keeps its last
 * {@link AGENT_EVENT_CAPACITY} events with sequential ids from 1, and a client polls
 * `GET /v1/agents/{id}/events?after=<seq>` with the last id it saw. What the ring holds: an
 * agent's turns (`turn_started`, `tool_start`, `tool_approval`, `approval_decided`, `tool_end`,
 * `usage`, `message`, `done`, `error`), not the streamed deltas (those are in the chat stream).
 * In memory, like the seed's: a restart starts every ring empty again at seq 1.
 */

export const AGENT_EVENT_CAPACITY = 200;

export interface AgentEvent {
  seq: number;
  type: string;
  timestamp: string;
  sessionId: string;
  turnId: string | null;
  data: Record<string, unknown>;
}

export interface AgentEventPage {
  events: AgentEvent[];
  /** Pass as `after` for the next poll (the last seq returned, or `after` when nothing new). */
  cursor: number;
  /** The oldest seq still in the ring (0 when empty): a client whose `after` is below `oldest - 1` missed events. */
  oldest: number;
  /** Events between `after` and `oldest` that the ring no longer holds. */
  missed: number;
}

interface Ring {
  items: AgentEvent[];
  next: number;
}

export class AgentEventBuffer {
  readonly #rings = new Map<string, Ring>();
  readonly #capacity: number;

  constructor(capacity = AGENT_EVENT_CAPACITY) {
    this.#capacity = capacity;
  }

  push(agentId: string, e: Omit<AgentEvent, 'seq'>): AgentEvent {
    let ring = this.#rings.get(agentId);
    if (!ring) {
      ring = { items: [], next: 1 };
      this.#rings.set(agentId, ring);
    }
    const event = { seq: ring.next++, ...e };
    ring.items.push(event);
    if (ring.items.length > this.#capacity) ring.items.splice(0, ring.items.length - this.#capacity);
    return event;
  }

  after(agentId: string, after: number, limit: number): AgentEventPage {
    const ring = this.#rings.get(agentId);
    if (!ring?.items.length) return { events: [], cursor: after, oldest: 0, missed: 0 };
    const oldest = ring.items[0]!.seq;
    // Sequential ids: the first wanted item is at a computed index.
    const from = Math.max(0, after + 1 - oldest);
    const events = ring.items.slice(from, from + limit);
    return { events, cursor: events.at(-1)?.seq ?? after, oldest, missed: Math.max(0, oldest - 1 - after) };
  }

  forget(agentId: string): void {
    this.#rings.delete(agentId);
  }
}
