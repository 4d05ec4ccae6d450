import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';
import { validationError } from '../../core/errors.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import { AgentEventBuffer } from '../agents/events.ts';
import { AgentService } from '../agents/service.ts';
import { AgentStore } from '../agents/store.ts';
import { ApprovalService } from '../approvals/service.ts';
import { ApprovalStore } from '../approvals/store.ts';
import type { DepartmentService } from '../departments/service.ts';
import type { SessionSandboxes } from '../sandboxes.ts';
import type { SessionService } from '../sessions/service.ts';
import type { SessionRecord } from '../sessions/store.ts';
import type { TaskTracker } from '../tasks.ts';
import { VaultService, type SecretSealer } from '../vault/service.ts';
import { VaultStore } from '../vault/store.ts';
import { ChatEventLog } from './events.ts';
import { MessageStore } from './messages.ts';
import { ProviderStore } from './provider-store.ts';
import { ProviderRegistry } from './providers.ts';
import { ChatSandboxes } from './sandbox.ts';
import { ChatService } from './service.ts';
import type { SandboxIo } from './tools.ts';
import { TurnStore } from './turns.ts';

export interface ChatDeps {
  db: Db;
  config: Config;
  clock: Clock;
  logger: Logger;
  events: EventSink;
  secrets: SecretSealer;
  sessions: SessionService;
  sessionById(id: string): SessionRecord | null;
  departments: DepartmentService;
  sandboxes: SessionSandboxes;
  tasks: TaskTracker;
  /** The runtime's Executor and FileTransfer, as the tools use them. */
  io: SandboxIo;
}

/** The chat area as the composition root and the routes see it. */
export interface Chat {
  service: ChatService;
  agents: AgentService;
  approvals: ApprovalService;
  vault: VaultService;
  providers: ProviderRegistry;
  /** The chat stream (the WebSocket `chat` channel reads it). */
  log: ChatEventLog;
}

/**
 * Assembles agents, approvals, the credential vault, LLM providers and chat; nothing here is
 * module-global. Throws a ConfigError naming the variable when DIRECTOR_LLM_* do not fit together.
 */
export function createChat(d: ChatDeps): Chat {
  const ring = new AgentEventBuffer();
  const vault = new VaultService({ store: new VaultStore(d.db), secrets: d.secrets, events: d.events, clock: d.clock });
  const providers = new ProviderRegistry({
    config: d.config,
    store: new ProviderStore(d.db),
    secrets: d.secrets,
    events: d.events,
    clock: d.clock,
  });
  const agents = new AgentService({
    store: new AgentStore(d.db),
    sessions: d.sessions,
    departments: d.departments,
    events: d.events,
    ring,
    clock: d.clock,
    checkProvider: (workspace, id, field) => providers.checkExists(workspace, id, field),
    checkSecrets: (workspace, bindings, field) => vault.checkIds(workspace, bindings, field),
  });
  const approvals = new ApprovalService({
    store: new ApprovalStore(d.db),
    events: d.events,
    clock: d.clock,
    logger: d.logger.child({ part: 'approvals' }),
    timeoutMs: d.config.chatApprovalTimeoutMs,
    agentOf: (caller, id, field) => {
      try {
        return agents.get(caller, id);
      } catch {
        throw validationError(field, `no agent ${id} in this workspace`);
      }
    },
  });
  const log = new ChatEventLog(d.db, d.clock);
  const service = new ChatService({
    sessions: d.sessions,
    sessionById: (id) => d.sessionById(id),
    agents,
    approvals,
    vault,
    providers,
    log,
    messages: new MessageStore(d.db),
    turns: new TurnStore(d.db),
    sandboxes: new ChatSandboxes(d.sandboxes),
    io: d.io,
    tasks: d.tasks,
    events: d.events,
    ring,
    clock: d.clock,
    config: d.config,
    logger: d.logger,
  });
  // Deleting an agent cancels its running turn, then its auto-approve rules go.
  agents.onDelete((a) => service.agentDeleted(a));
  agents.onDelete((a) => approvals.forgetAgent(a.id));
  return { service, agents, approvals, vault, providers, log };
}
