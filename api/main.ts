/**
 * The Director server: provisioned by scripts/up.sh, then `node api/main.ts`. Loads and
 * validates configuration (refusing to start on a bad DIRECTOR_* value), starts the runtime
 * (reconcile, supervisor, warm pool) and serves HTTP on DIRECTOR_HOST:DIRECTOR_PORT.
 */
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../runtime/config.ts';
import { createRuntimeMetrics } from '../runtime/metrics.ts';
import { createRuntime } from '../runtime/runtime.ts';
import { buildApp } from './app.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`director: configuration error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
const logger = pino({ level: config.logLevel, redact: { paths: ['req.headers.authorization', '*.password', '*.token', '*.secret', '*.apiKey'], censor: '[redacted]' } });

// The runtime must outlive its sandboxes under memory pressure: make it the OOM killer's last choice.
try {
  writeFileSync('/proc/self/oom_score_adj', '-500');
} catch {
  logger.debug('could not lower oom_score_adj (not root?)');
}

const runtime = createRuntime({ config, logger, metrics: createRuntimeMetrics(undefined, { processMetrics: true }) });
try {
  await runtime.start();
} catch (err) {
  logger.fatal({ err }, 'runtime failed to start (is the container engine reachable? run scripts/provision.sh)');
  process.exit(1);
}
const app = await buildApp({ runtime, logger: { level: config.logLevel } });
await app.listen({ host: config.host, port: config.port });
logger.info({ url: `http://${config.host}:${config.port}`, engine: runtime.engine.endpoint, dataDir: config.dataDir }, 'director is serving');

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: draining requests');
  const force = setTimeout(() => {
    logger.warn('drain timed out; exiting');
    process.exit(1);
  }, 15_000);
  force.unref();
  void app
    .close()
    .then(() => runtime.close())
    .then(() => process.exit(0));
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
