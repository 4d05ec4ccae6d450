/**
 * The Director server: provisioned by scripts/up.sh, then `node api/main.ts`. Loads and
 * validates configuration (refusing to start on a bad DIRECTOR_* value, before anything
 * starts), builds Director (api/server.ts), starts the runtime (reconcile, firewall,
 * supervisor, jobs, warm pool), creates the first admin, and serves HTTP on
 * DIRECTOR_HOST:DIRECTOR_PORT until SIGTERM/SIGINT, then drains and stops.
 */
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from '../runtime/config.ts';
import { createRuntimeMetrics } from '../runtime/metrics.ts';
import { createDirector } from './server.ts';

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`director: configuration error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
const redact = {
  paths: [
    'req.headers.authorization',
    'req.headers.cookie',
    '*.password',
    '*.token',
    '*.refreshToken',
    '*.secret',
    '*.key',
    '*.adminPassword',
    '*.jwtSecret',
  ],
  censor: '[redacted]',
};
const logger = pino({ level: config.logLevel, redact });

// The runtime must outlive its sandboxes under memory pressure: make it the OOM killer's last choice.
try {
  writeFileSync('/proc/self/oom_score_adj', '-500');
} catch {
  logger.debug('could not lower oom_score_adj (not root?)');
}

const director = await createDirector({
  config,
  logger,
  metrics: createRuntimeMetrics(undefined, { processMetrics: true }),
  httpLogger: { level: config.logLevel, redact },
});
const { runtime, auth } = director;
try {
  await director.start();
} catch (err) {
  logger.fatal(
    { err },
    'runtime failed to start (is the container engine reachable? is nft installed and are we root? run scripts/provision.sh)',
  );
  process.exit(1);
}

try {
  const admin = await auth.bootstrapAdmin(config.adminPassword || undefined);
  if (admin.generatedPassword) {
    // Printed once, to the terminal only (not through the logger): it is never stored in clear.
    process.stderr.write(
      `\ndirector: created user "admin" with generated password: ${admin.generatedPassword}\ndirector: it is shown only now; set DIRECTOR_ADMIN_PASSWORD on first start to choose it.\n\n`,
    );
  } else if (admin.created) {
    logger.info('created user "admin" with the password from DIRECTOR_ADMIN_PASSWORD');
  }
} catch (err) {
  logger.fatal({ err }, 'could not create the admin user');
  process.exit(2);
}

const url = await director.listen();
logger.info({ url, engine: runtime.engine.endpoint, dataDir: config.dataDir }, 'director is serving');

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: no new requests; draining');
  const force = setTimeout(() => {
    logger.warn('drain timed out; exiting');
    process.exit(1);
  }, config.shutdownGraceMs);
  force.unref();
  void director.close().then(() => process.exit(0));
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
