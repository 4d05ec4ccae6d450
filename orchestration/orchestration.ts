import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.ts';
import type { Db } from '../core/db.ts';
import { conflict, validationError } from '../core/errors.ts';
import type { Config } from '../runtime/config.ts';
import type { EventSink } from '../runtime/events.ts';
import type { Caller, SandboxManager } from '../runtime/sandbox/manager.ts';
import type { Executor } from '../runtime/sandbox/execute.ts';
import type { FileTransfer } from '../runtime/sandbox/transfer.ts';
import type { SandboxStore } from '../runtime/store/sandboxes.ts';
import type { NetworkManager } from '../runtime/network/manager.ts';
import { ContextService } from './context/service.ts';
import { ContextStore } from './context/store.ts';
import { DepartmentService, type DepartmentUsage } from './departments/service.ts';
import { DepartmentStore, type DepartmentRecord } from './departments/store.ts';
import { SessionSandboxes, type EnvironmentSource } from './sandboxes.ts';
import { SessionService } from './sessions/service.ts';
import { SessionStore, type SessionConfig, type SessionRecord } from './sessions/store.ts';
import { countedExecutes, TaskTracker, type ExecutePort } from './tasks.ts';
import type { RunSandboxes, StepExecutor, WorkflowCheckpoints } from './workflows/ports.ts';
import type { WorkflowService } from './workflows/service.ts';
import { SessionCheckpoints } from './workflows/session-checkpoints.ts';
import { createWorkflows } from './workflows/workflows.ts';
import { createChat, type Chat } from './chat/chat.ts';
import { SecretBox } from '../core/secrets.ts';
import { EnvironmentService } from './environments/service.ts';
import { EnvironmentStore } from './environments/store.ts';
import { loadTemplates } from './environments/template.ts';
import { createCheckpointService, type CheckpointService } from './checkpoints/service.ts';
import { isDirectorError } from '../core/errors.ts';
import type { Runtime } from '../runtime/runtime.ts';

/** The runtime services the orchestration layer uses (never the engine or nft directly). */
export interface OrchestrationDeps {
  db: Db;
  config: Config;
  clock: Clock;
  logger: Logger;
  events: EventSink;
  sandboxes: SandboxManager;
  sandboxStore: SandboxStore;
  files: FileTransfer;
  /** Seals secrets at rest (vault values, provider keys); default `SecretBox.fromConfig(config)`. */
  secrets?: SecretBox;
  /** Null when the network layer is off. */
  networks: NetworkManager | null;
  environments?: EnvironmentSource;
  /** The runtime's Executor: workflow steps and agents' tool calls run through it (limits, output caps, process-group kill). */
  executor: Executor;
  /** What workflow steps run through, when not `executor` itself (a benchmark's timing wrapper). */
  stepExecutor?: StepExecutor;
  /**
   * Wraps what workflow checkpoint steps and rollbacks go through (a benchmark's timing wrapper);
   * they are checkpoints of the checkpoints area limited to the run's sandbox ({@link SessionCheckpoints}).
   */
  workflowCheckpoints?: (checkpoints: WorkflowCheckpoints) => WorkflowCheckpoints;
  /** The app's Prometheus registry, for the workflow metrics. */
  registry?: Registry;
}

export interface Orchestration {
  sessions: SessionService;
  departments: DepartmentService;
  context: ContextService;
  contextStore: ContextStore;
  sandboxes: SessionSandboxes;
  tasks: TaskTracker;
  /** The Executor for the API's execute route: a session's executes count as its tasks. */
  executes: ExecutePort;
  sessionStore: SessionStore;
  departmentStore: DepartmentStore;
  environments: EnvironmentService;
  checkpoints: CheckpointService;
  workflows: WorkflowService;
  /** Agents, chat, approvals, the credential vault and LLM providers. */
  chat: Chat;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Assembles the orchestration layer over the runtime's services; nothing here is module-global.
 * Each area registers what a session's end does to what it owns (`sessions.onEnd`), so the
 * session service knows no other area.
 */
export function createOrchestration(d: OrchestrationDeps): Orchestration {
  const log = d.logger.child({ component: 'orchestration' });
  const sessionStore = new SessionStore(d.db);
  const departmentStore = new DepartmentStore(d.db);
  const contextStore = new ContextStore(d.db);
  const tasks = new TaskTracker(sessionStore, (err) => log.error({ err }, 'task count listener failed'));
  const secrets = d.secrets ?? SecretBox.fromConfig(d.config);
  const environmentService = new EnvironmentService({
    store: new EnvironmentStore(d.db),
    templates: loadTemplates(),
    secrets,
    events: d.events,
    clock: d.clock,
  });
  const environments: EnvironmentSource = d.environments ?? environmentSource(environmentService);

  const checkReferences = (caller: Caller, cfg: Partial<SessionConfig>): void => {
    if (cfg.networkId) {
      if (!d.networks) throw validationError('config.networkId', 'the network layer is not enabled on this instance');
      try {
        d.networks.get(caller, cfg.networkId);
      } catch {
        throw validationError('config.networkId', `no network ${cfg.networkId} in this workspace`);
      }
    }
    if (cfg.environmentId) {
      environments.forSandbox(caller, cfg.environmentId, 'config.environmentId');
    }
  };

  const sessions = new SessionService({
    store: sessionStore,
    events: d.events,
    clock: d.clock,
    config: d.config,
    logger: log.child({ area: 'sessions' }),
    countDepartments: (id) => departmentStore.countOf(id),
    countTasks: (id) => tasks.of(id).total,
    checkReferences,
  });
  tasks.onChange((sessionId) => sessions.metricsChanged(sessionId));

  const usage = async (dep: DepartmentRecord): Promise<DepartmentUsage> => {
    const recs = d.sandboxStore.ofDepartment(dep.id);
    const running = recs.filter((r) => r.status === 'running' && r.containerId);
    let cpuPercent = 0;
    let memoryBytes = 0;
    await Promise.all(
      running.map(async (r) => {
        try {
          const s = await d.sandboxes.deps.engine.stats(r.containerId!);
          cpuPercent += s.cpuPercent;
          memoryBytes += s.memoryBytes;
        } catch {
          // A sandbox that ended between the listing and the measurement uses nothing.
        }
      }),
    );
    return { sandboxesRunning: running.length, sandboxesTotal: recs.length, cpuPercent, memoryBytes };
  };

  const departments = new DepartmentService({
    store: departmentStore,
    sessions,
    tasks,
    events: d.events,
    clock: d.clock,
    config: d.config,
    usage,
  });

  const sandboxes = new SessionSandboxes({
    sandboxes: d.sandboxes,
    store: d.sandboxStore,
    files: d.files,
    sessions,
    departments,
    environments,
    logger: log.child({ area: 'sandboxes' }),
  });

  const context = new ContextService({
    store: contextStore,
    sessions,
    events: d.events,
    clock: d.clock,
    config: d.config,
    readFile: async (caller: Caller, session: SessionRecord, sandboxId: string | undefined, path: string) => {
      const running = d.sandboxStore.ofSession(session.id).filter((r) => r.status === 'running');
      const target = sandboxId ? running.find((r) => r.id === sandboxId) : running.length === 1 ? running[0] : undefined;
      if (!target) {
        throw sandboxId
          ? validationError('metadata.sandboxId', `sandbox ${sandboxId} is not a running sandbox of session ${session.id}`)
          : running.length
            ? validationError('metadata.sandboxId', `session ${session.id} has ${running.length} running sandboxes: name one`)
            : conflict(`session ${session.id} has no running sandbox to read ${path} from`, { field: 'content' });
      }
      const file = await d.files.downloadFile(caller, target.id, path);
      return { content: file.content, sandboxId: target.id };
    },
  });

  const runSandboxes: RunSandboxes = {
    create: (caller, body) => sandboxes.create(caller, body),
    byId: (id) => d.sandboxStore.byId(id),
    ofSession: (id) => d.sandboxStore.ofSession(id),
    destroy: (rec, reason) => d.sandboxes.deps.teardown.destroy(rec, reason),
  };
  const chat = createChat({
    db: d.db,
    config: d.config,
    clock: d.clock,
    logger: log.child({ area: 'chat' }),
    events: d.events,
    secrets,
    sessions,
    sessionById: (id) => sessionStore.byId(id),
    departments,
    sandboxes,
    tasks,
    io: {
      execute: (caller, id, req, signal) => d.executor.run(caller, id, req, signal),
      readFile: async (caller, id, path) => (await d.files.downloadFile(caller, id, path)).content,
      writeFile: (caller, id, path, content) => d.files.upload(caller, id, path, content, 'file'),
    },
  });

  const checkpoints = createCheckpointService({
    runtime: {
      config: d.config,
      db: d.db,
      clock: d.clock,
      logger: d.logger,
      events: d.events,
      sandboxes: d.sandboxes,
      executor: d.executor,
    },
    sessions,
    sessionStore,
    departmentStore,
    contextStore,
    messages: chat.service.messageSnapshots,
  });

  // A workflow's checkpoint step is a checkpoint of the session limited to the run's sandbox.
  const sessionCheckpoints = new SessionCheckpoints(checkpoints);
  const workflows = createWorkflows({
    db: d.db,
    config: d.config,
    clock: d.clock,
    logger: log.child({ area: 'workflows' }),
    events: d.events,
    sessions,
    departments,
    departmentStore,
    tasks,
    executor: d.stepExecutor ?? d.executor,
    checkpoints: d.workflowCheckpoints?.(sessionCheckpoints) ?? sessionCheckpoints,
    sandboxes: runSandboxes,
    environments,
    ...(d.registry ? { registry: d.registry } : {}),
  });

  // What a session's end does to what it owns, in phase order.
  sessions.onEnd({ name: 'workflows', phase: 0, end: (s, to) => workflows.endSession(s.id, to) });
  sessions.onEnd({ name: 'chat', phase: 0, end: (s, to) => chat.service.endSessionWork(s, to) });
  sessions.onEnd({ name: 'sandboxes', phase: 1, end: (s, to) => sandboxes.endSession(s, to) });
  sessions.onEnd({
    name: 'chat-records',
    phase: 2,
    end: async (s, to) => {
      chat.service.endSessionRecords(s, to);
      await chat.agents.endSession(s.id, to === 'terminated');
    },
  });
  sessions.onEnd({
    name: 'context',
    phase: 2,
    end: async (s, to) => {
      if (to === 'terminated') contextStore.deleteOfSession(s.id, d.clock.nowMs());
    },
  });
  sessions.onEnd({
    name: 'departments',
    phase: 2,
    end: async (s, to) => {
      if (to === 'terminated') departments.deleteOfSession(s.id);
    },
  });

  return {
    sessions,
    departments,
    context,
    contextStore,
    sandboxes,
    tasks,
    executes: countedExecutes(d.executor, tasks),
    sessionStore,
    departmentStore,
    environments: environmentService,
    checkpoints,
    workflows,
    chat,
    async start() {
      await checkpoints.start();
      chat.service.start();
      await sessions.start();
      await workflows.start();
    },
    async close() {
      await workflows.close();
      sessions.close();
      await chat.service.close();
      await sessions.settle();
    },
  };
}

/** Environments as the sandboxes of a session take them: a missing one is a 400 naming the field that referred to it. */
function environmentSource(svc: EnvironmentService): EnvironmentSource {
  return {
    forSandbox(caller, environmentId, field) {
      let env;
      try {
        env = svc.forSandbox(caller, environmentId);
      } catch (err) {
        if (isDirectorError(err) && err.code === 'NOT_FOUND')
          throw validationError(field, `no environment ${environmentId} in this workspace`);
        throw err;
      }
      return {
        id: env.environmentId,
        image: env.image,
        variables: env.environment,
        ceiling: env.limitCeiling,
        networkPolicy: env.networkPolicy,
        files: env.files,
      };
    },
  };
}

/** The runtime's services that {@link createOrchestration} takes, as the composition root hands them over. */
export function runtimeServices(rt: Runtime): OrchestrationDeps {
  return {
    db: rt.db,
    config: rt.config,
    clock: rt.clock,
    logger: rt.logger,
    events: rt.events,
    sandboxes: rt.sandboxes,
    sandboxStore: rt.sandboxes.deps.store,
    files: rt.files,
    executor: rt.executor,
    networks: rt.networks?.manager ?? null,
    registry: rt.metrics.registry,
    secrets: rt.secrets,
  };
}
