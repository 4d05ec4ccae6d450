import { pino, type Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.ts';
import { loadConfig, type Config } from './config.ts';
import type { Engine } from './engine/engine.ts';
import { DockerEngine } from './engine/docker/docker.ts';
import { createEventSink, type EventSink } from './events.ts';
import { createRuntimeMetrics, type RuntimeMetrics } from './metrics.ts';
import { Executor } from './sandbox/execute.ts';
import { Launchers } from './sandbox/launcher.ts';
import { SandboxManager } from './sandbox/manager.ts';
import { noNetworking, type NetworkAttacher } from './sandbox/network.ts';
import { WarmPool } from './sandbox/pool.ts';
import { Supervisor } from './sandbox/supervisor.ts';
import { FileTransfer } from './sandbox/transfer.ts';
import { openDb, type Db } from '../core/db.ts';
import { SandboxStore } from './store/sandboxes.ts';
import { NetworkStore } from './store/networks.ts';
import { Firewall } from './network/firewall.ts';
import { NetworkManager } from './network/manager.ts';
import { DenyMonitor } from './network/monitor.ts';
import { createDnsController } from './network/dns-controller.ts';
import { alwaysDeniedRanges } from '../netfilter/model.ts';
import { parseList } from '../core/validate.ts';

export interface RuntimeOptions {
  config?: Config;
  engine?: Engine;
  db?: Db;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  network?: NetworkAttacher;
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
  events: EventSink;
  sandboxes: SandboxManager;
  networks: NetworkLayer | null;
  executor: Executor;
  files: FileTransfer;
  pool: WarmPool;
  supervisor: Supervisor;
  /** Reconciles with the engine, starts watchers and fills the warm pool (in the background). */
  start(opts?: { waitForPool?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/** Assembles the runtime from its parts; nothing here is module-global, so tests build their own. */
export function createRuntime(opts: RuntimeOptions = {}): Runtime {
  const config = opts.config ?? loadConfig();
  const logger = opts.logger ?? pino({ level: config.logLevel });
  const clock = opts.clock ?? systemClock;
  const engine = opts.engine ?? new DockerEngine();
  const db = opts.db ?? openDb(config.dataDir);
  const metrics = opts.metrics ?? createRuntimeMetrics(undefined, { processMetrics: true });
  const store = new SandboxStore(db);
  const events = createEventSink(db, clock, (e) => metrics.eventsTotal.inc({ type: e.type, severity: e.severity }));
  metrics.onCollectSandboxes(() => store.countByState());
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
  const sandboxes = new SandboxManager({
    engine,
    store,
    events,
    metrics,
    config,
    clock,
    logger,
    network: opts.network ?? networks?.manager ?? noNetworking,
  });
  if (networks) {
    networks.manager.deps.destroySandbox = async (id, reason) => {
      const rec = store.byId(id);
      if (rec) await sandboxes.destroy(rec, reason);
    };
  }
  const launchers = new Launchers(engine);
  const executor = new Executor(sandboxes, launchers);
  const files = new FileTransfer(sandboxes);
  const pool = new WarmPool(sandboxes, logger);
  const supervisor = new Supervisor(sandboxes, logger);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
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
    events,
    sandboxes,
    networks,
    executor,
    files,
    pool,
    supervisor,
    async start(o = {}) {
      await networks?.manager.boot();
      await networks?.monitor.start();
      await supervisor.start();
      const filling = pool.start();
      if (o.waitForPool) await filling;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
