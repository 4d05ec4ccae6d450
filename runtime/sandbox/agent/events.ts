import type { EventInput, EventSink } from '../../events.ts';
import type { AgentChannel, AgentTamper } from './channel.ts';
import type { AgentLost } from './client.ts';

export interface AgentEventContext {
  workspace: string;
  sandboxId: string;
}

/** What runs a sandbox's executes once its agent is lost: `docker exec`, or nothing (the sandbox is marked failed). */
export type AgentFallback = 'docker_exec' | 'failed';

/** `agent_tampered` (high): a sandbox process connected to its agent's channel, posing as the agent. */
export const agentTamperedEvent = (ctx: AgentEventContext, t: AgentTamper): EventInput => ({
  type: 'agent_tampered',
  severity: 'high',
  workspace: ctx.workspace,
  sandboxId: ctx.sandboxId,
  details: {
    reason: t.agentConnected ? 'a second connection to the agent channel' : 'a connection to a channel no agent may use',
    refusedConnections: t.attempts,
    totalRefused: t.total,
  },
});

/**
 * `agent_lost`: the sandbox's agent is gone (it exited or was killed), stopped answering, or
 * broke the protocol (high: only a tampered agent does), and what runs executes from now on.
 */
export const agentLostEvent = (ctx: AgentEventContext, lost: AgentLost, fallback: AgentFallback): EventInput => ({
  type: 'agent_lost',
  severity: lost.reason === 'protocol' ? 'high' : 'medium',
  workspace: ctx.workspace,
  sandboxId: ctx.sandboxId,
  details: { reason: lost.reason, detail: lost.detail.slice(0, 256), fallback },
});

/** Reports every refused connection on the channel as `agent_tampered`; returns the unsubscribe. */
export function reportTampering(channel: AgentChannel, events: Pick<EventSink, 'emit'>, ctx: AgentEventContext): () => void {
  const onTampered = (t: AgentTamper) => void events.emit(agentTamperedEvent(ctx, t));
  channel.on('tampered', onTampered);
  return () => void channel.off('tampered', onTampered);
}
