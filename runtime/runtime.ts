import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.ts';
import { loadConfig, type Config } from './config.ts';
import type { Engine } from './engine/engine.ts';
import { DockerEngine } from './engine/docker/docker.ts';
import { createEventSink, type EventSink } from './events.ts';
import { Health } from './health.ts';
import { createRuntimeMetrics, type RuntimeMetrics } from './metrics.ts';
import { Monitoring } from './monitoring/service.ts';
import { Sampler } from './monitoring/sampler.ts';
import { UsageReadings } from './monitoring/readings.ts';
import { SandboxCreator } from './sandbox/creator.ts';
import { Agents, agentBaseDir, agentsUsable } from './sandbox/agent/agents.ts';
import { defaultAgentBinary } from './sandbox/agent/mount.ts';
import { Executor } from './sandbox/execute.ts';
import { Launchers } from './sandbox/launcher.ts';
import { createSandboxLifecycle, type SandboxLifecycle } from './sandbox/lifecycle.ts';
import { SandboxManager } from './sandbox/manager.ts';
import { SandboxEnvironments } from './sandbox/environment.ts';
import { SecretBox } from '../core/secrets.ts';
import { noNetworking, type NetworkAttacher } from './sandbox/network.ts';
import { WarmPool } from './sandbox/pool.ts';
import { localTmpfsResizer } from './sandbox/tmpfs-size.ts';
import { Shells } from './sandbox/shell.ts';
import { Supervisor } from './sandbox/supervisor.ts';
import { SandboxTeardown } from './sandbox/teardown.ts';
import { FileTransfer } from './sandbox/transfer.ts';
import { ProfileService } from './security/profiles.ts';
import { createSecurity, type Security, type SecurityOptions } from './security/service.ts';
import { openDb, type Db } from '../core/db.ts';
import { SandboxStore } from './store/sandboxes.ts';
import { NetworkStore } from './store/networks.ts';
import { Firewall } from './network/firewall.ts';
import { NetworkManager } from './network/manager.ts';
import { DenyMonitor } from './network/monitor.ts';
import { createDnsController } from './network/dns-controller.ts';
import { resolveOptions, type DispatcherOptions } from './webhooks/options.ts';
import { Webhooks } from './webhooks/service.ts';
import { alwaysDeniedRanges } from '../netfilter/model.ts';
import { loadBuiltinProfiles } from '../policies/profiles.ts';
import { parseList } from '../core/validate.ts';

export interface RuntimeOptions {
  config?: Config;
  engine?: Engine;
  db?: Db;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  network?: NetworkAttacher;
  security?: SecurityOptions;
  /** Seals secrets at rest (a fitted sandbox's environment; orchestration's vault); default `SecretBox.fromConfig(config)`. */
  secrets?: SecretBox;
  /** Webhook delivery settings beyond the operator's (tests shorten retries, inject a transport). */
  webhooks?: Partial<DispatcherOptions>;
}

/** Networks, when the network layer is on (DIRECTOR_NETWORKING=on, the default). */
export interface NetworkLayer {
  store: NetworkStore;
  firewall: Firewall;
  manager: NetworkManager;
  monitor: DenyMonitor;
  dns: ReturnType<typeof createDnsController>;
}

export interface Runtime extends AsyncDisposable {
  config: Config;
  engine: Engine;
  db: Db;
  clock: Clock;
  logger: Logger;
  metrics: RuntimeMetrics;
  /** Seals secrets at rest with the instance's key (shared with orchestration). */
  secrets: SecretBox;
  /** The one event stream: stored, published, delivered to webhooks. */
  events: EventSink;
  /** What happens to sandboxes (started, deadline armed, ended), for any part to follow with `on`. */
  lifecycle: SandboxLifecycle;
  sandboxes: SandboxManager;
  networks: NetworkLayer | null;
  executor: Executor;
  /** Exec agents of the sandboxes this Director created; null when executes use `docker exec` (DIRECTOR_EXEC_AGENT=off, a remote engine, no agent built). */
  agents: Agents | null;
  /** Interactive shells in sandboxes (the terminal). */
  shells: Shells;
  files: FileTransfer;
  pool: WarmPool;
  supervisor: Supervisor;
  /** Security profiles, enforcement, alerts, event retention. */
  security: Security;
  webhooks: Webhooks;
  monitoring: Monitoring;
  health: Health;
  /** Reconciles with the engine, starts watchers, jobs and deliveries, and fills the warm pool (in the background). */
  start(opts?: { waitForPool?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/**
 * The runtime's composition root: every part is built here, once, with what it needs passed in,
 * and every lifecycle listener is registered here, in the order it runs. Nothing is
 * module-global, so tests build their own. A later layer (orchestration/) takes the parts it
 * needs from the returned object and subscribes to `lifecycle` and `events`.
 */
export function createRuntime(opts: RuntimeOptions = {}): Runtime {
  const config = opts.config ?? loadConfig();
  const logger = opts.logger ?? pino({ level: config.logLevel });
  const clock = opts.clock ?? systemClock;
  const engine = opts.engine ?? new DockerEngine();
  const db = opts.db ?? openDb(config.dataDir);
  const metrics = opts.metrics ?? createRuntimeMetrics(undefined, { processMetrics: true });
  const store = new SandboxStore(db);
  const events = createEventSink(db, clock, (e) => metrics.eventsTotal.inc({ type: e.type, severity: e.severity }));
  const lifecycle = createSandboxLifecycle(logger.child({ component: 'lifecycle' }));
  metrics.onCollectSandboxes(() => store.countByState());

  // Networks and sandboxes need each other: a sandbox attaches to and releases its network, and
  // a forced network delete removes the sandboxes on it. The network side is given a function
  // that reaches the sandbox teardown built below; nothing calls it before `start()`.
  let networks: NetworkLayer | null = null;
  if (config.networking === 'on' && !opts.network) {
    const netStore = new NetworkStore(db);
    const firewall = new Firewall({
      table: config.nftTable,
      alwaysDenied: alwaysDeniedRanges(parseList(config.alwaysDeniedOpen)),
      dnsPort: config.dnsPort,
      store: netStore,
      events,
      clock,
      logger: logger.child({ component: 'firewall' }),
      checkIntervalMs: config.nftCheckIntervalMs,
    });
    const dns = createDnsController({
      upstream: config.dnsUpstream,
      port: config.dnsPort,
      store: netStore,
      firewall,
      events,
      alwaysDenied: firewall.alwaysDenied,
      clock,
      logger: logger.child({ component: 'dns' }),
    });
    const manager = new NetworkManager({
      engine,
      store: netStore,
      firewall,
      events,
      config,
      clock,
      logger: logger.child({ component: 'networks' }),
      dns,
      destroySandbox: (id, reason) => teardown.destroyById(id, reason),
      dropPooled: (id) => pool.dropNetwork(id),
    });
    const monitor = new DenyMonitor({ store: netStore, events, clock, logger: logger.child({ component: 'deny-log' }) });
    networks = { store: netStore, firewall, manager, monitor, dns };
    metrics.onCollectNetworks(async () => {
      const table = await firewall.table();
      return netStore
        .active()
        .map((r) => ({ network: r.privateFor ? 'isolated' : r.name, counters: table?.networks[r.short]?.counters ?? null }));
    });
  }
  metrics.onCollectHealth(async () => {
    const engineUp = await engine.ping(AbortSignal.timeout(2000)).then(
      () => 1,
      () => 0,
    );
    let storeUp = 1;
    try {
      db.checkWritable();
    } catch {
      storeUp = 0;
    }
    const fw = networks?.firewall.status;
    return { engine: engineUp, store: storeUp, firewall: !fw || (fw.booted && !fw.tampered) ? 1 : 0 };
  });

  // Sandboxes: creating and ending apart from the caller-facing manager, so the pool (which
  // creates and drains) can be given to the manager (which claims from it).
  const network: NetworkAttacher = opts.network ?? networks?.manager ?? noNetworking;
  const agentBinary = config.agentBinary || defaultAgentBinary(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
  const agents = agentsUsable({ setting: config.execAgent, local: engine.local === true, binary: agentBinary })
    ? new Agents({
        engine,
        store,
        events,
        logger: logger.child({ component: 'agents' }),
        binary: agentBinary,
        baseDir: agentBaseDir(path.join(config.dataDir, 'agent')),
      })
    : null;
  if (!agents && config.execAgent === 'on' && engine.local)
    logger.warn({ binary: agentBinary }, 'exec agent not built (images/agent/build.sh): executes use docker exec');
  // Warm sandboxes give way to users' creates at the host limit (the pool is built below).
  const creator = new SandboxCreator({
    engine,
    store,
    metrics,
    config,
    clock,
    logger,
    network,
    lifecycle,
    agents,
    giveWay: () => pool.giveWay(),
  });
  // The monitoring sampler's latest usage per sandbox, read by the lifecycle events that end one.
  const usage = new UsageReadings();
  const teardown: SandboxTeardown = new SandboxTeardown({ engine, store, events, clock, network, lifecycle, usage });
  const secrets = opts.secrets ?? SecretBox.fromConfig(config);
  const environments = new SandboxEnvironments(store, secrets);
  const netStore = networks?.store;
  const pool: WarmPool = new WarmPool({
    engine,
    environments,
    creator,
    teardown,
    store,
    config,
    clock,
    metrics,
    lifecycle,
    logger,
    tmpfs: localTmpfsResizer(engine, path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')),
    networks: netStore
      ? {
          ready: (workspace, id) => {
            const r = netStore.get(workspace, id);
            return r !== null && r.status === 'ready' && r.privateFor === null;
          },
        }
      : null,
  });
  const profiles = new ProfileService(db, clock, events, opts.security?.builtinProfiles ?? loadBuiltinProfiles());
  const sandboxes = new SandboxManager({ engine, store, events, metrics, config, clock, network, creator, teardown, pool, profiles });
  const supervisor = new Supervisor({ engine, store, events, config, clock, logger, network, teardown, lifecycle, usage });
  const executor = new Executor(sandboxes, new Launchers(engine), environments, agents);
  const shells = new Shells({ executor, engine, events });
  const files = new FileTransfer(sandboxes);

  // Who follows the sandbox lifecycle, in the order they run.
  lifecycle.on('started', (r) => executor.started(r));
  lifecycle.on('deadlineArmed', (r) => supervisor.armDeadline(r));
  lifecycle.on('ended', (r) => executor.forget(r.id, r.containerId));
  lifecycle.on('ended', (r) => void agents?.close(r.id));
  lifecycle.on('ended', (r) => (r.pooled ? undefined : pool.roomFreed()));

  const security = createSecurity(
    {
      sandboxes,
      store,
      teardown,
      networks,
      db,
      clock,
      events,
      engine,
      config,
      profiles,
      logger,
      registry: metrics.registry,
      retentionDays: config.eventRetentionDays,
    },
    opts.security,
  );
  const webhooks = new Webhooks({ db, events, clock, logger, options: resolveOptions(opts.webhooks, config) });
  const health = new Health({ engine, db, firewall: networks?.firewall ?? null, nftTable: config.nftTable });
  const monitoring = new Monitoring({
    sandboxes,
    networks: networks?.manager ?? null,
    stream: security.stream,
    health,
    supervisor,
    sampler: new Sampler(sandboxes, logger.child({ component: 'sampler' }), usage),
  });

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    monitoring.close();
    await webhooks.stop();
    security.close();
    supervisor.stop();
    // Replaced policy generations are deleted now rather than left for the next start's rebuild.
    await networks?.firewall.settle().catch((err: unknown) => logger.warn({ err }, 'could not retire replaced nft chains'));
    networks?.firewall.close();
    await networks?.monitor.stop();
    await networks?.dns.closeAll();
    // Rules stay in force while networks exist (their sandboxes outlive the server); with none
    // left, nothing needs enforcing and the table goes (it is rebuilt at the next start).
    if (networks && networks.store.active().length === 0)
      await networks.firewall.dropTable().catch((err: unknown) => logger.warn({ err }, 'could not remove the nft table'));
    await pool.drain();
    // Sandboxes outliving the server keep running; their executes use docker exec after a restart.
    await agents?.closeAll();
    // Events still waiting for their group's transaction are stored before the store closes.
    events.flush();
    db.close();
  };
  return {
    config,
    engine,
    db,
    clock,
    logger,
    metrics,
    secrets,
    events,
    lifecycle,
    sandboxes,
    networks,
    executor,
    agents,
    shells,
    files,
    pool,
    supervisor,
    security,
    webhooks,
    monitoring,
    health,
    async start(o = {}) {
      await networks?.manager.boot();
      await networks?.monitor.start();
      await supervisor.start();
      security.start();
      webhooks.start();
      const filling = pool.start();
      if (o.waitForPool) await filling;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
