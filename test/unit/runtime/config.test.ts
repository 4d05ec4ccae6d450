import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allSettings, ConfigError, loadConfig, SETTINGS } from '../../../runtime/config.ts';

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, ConfigError);
    return err as ConfigError;
  }
  assert.unreachable('expected a ConfigError');
  throw new Error('unreachable');
}

test('an empty environment yields every declared default', () => {
  const cfg = loadConfig({}, {}, '/srv/director');
  for (const s of allSettings()) {
    if (s.key === 'dataDir') continue;
    assert.equal((cfg as Record<string, unknown>)[s.key], s.default, s.env);
  }
  assert.is(cfg.port, 8080);
  assert.is(cfg.host, '127.0.0.1');
});

test('a relative data dir is resolved against the project root; an absolute one is kept', () => {
  assert.is(loadConfig({}, {}, '/srv/director').dataDir, '/srv/director/.state/data');
  assert.is(loadConfig({ DIRECTOR_DATA_DIR: '/var/lib/d' }, {}, '/srv/director').dataDir, '/var/lib/d');
});

test('environment variables are read and coerced to their types', () => {
  const cfg = loadConfig({
    DIRECTOR_PORT: '9000',
    DIRECTOR_MAX_CPU: '4.5',
    DIRECTOR_LOG_LEVEL: 'debug',
    DIRECTOR_DEFAULT_IMAGE: 'alpine:3',
  });
  assert.is(cfg.port, 9000);
  assert.is(cfg.maxCpu, 4.5);
  assert.is(cfg.logLevel, 'debug');
  assert.is(cfg.defaultImage, 'alpine:3');
});

test('a non-numeric DIRECTOR_PORT stops startup with an error naming DIRECTOR_PORT', () => {
  const err = configErrorOf(() => loadConfig({ DIRECTOR_PORT: 'abc' }));
  assert.match(err.message, 'DIRECTOR_PORT');
  assert.match(err.message, 'abc');
});

test('an empty, fractional or out-of-range number is refused naming the variable', () => {
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_PORT: '' })).message, 'DIRECTOR_PORT');
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_PORT: '80.5' })).message, 'DIRECTOR_PORT');
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_PORT: '70000' })).message, 'DIRECTOR_PORT');
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_MAX_CPU: '0' })).message, 'DIRECTOR_MAX_CPU');
});

test('an unknown log level is refused naming DIRECTOR_LOG_LEVEL', () => {
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_LOG_LEVEL: 'loud' })).message, 'DIRECTOR_LOG_LEVEL');
});

test('a default above its maximum is refused naming both variables', () => {
  const err = configErrorOf(() => loadConfig({ DIRECTOR_DEFAULT_CPU: '3', DIRECTOR_MAX_CPU: '2' }));
  assert.match(err.message, 'DIRECTOR_DEFAULT_CPU');
  assert.match(err.message, 'DIRECTOR_MAX_CPU');
  const mem = configErrorOf(() => loadConfig({ DIRECTOR_MAX_MEMORY_MB: '256' }));
  assert.match(mem.message, 'DIRECTOR_DEFAULT_MEMORY_MB');
  assert.match(mem.message, 'DIRECTOR_MAX_MEMORY_MB');
  const exec = configErrorOf(() => loadConfig({}, { execTimeoutMs: 700_000 }));
  assert.match(exec.message, 'DIRECTOR_EXEC_TIMEOUT_MS');
  assert.match(exec.message, 'DIRECTOR_MAX_EXEC_TIMEOUT_MS');
});

test('a default equal to its maximum is accepted', () => {
  assert.is(loadConfig({ DIRECTOR_DEFAULT_PIDS: '4096' }).defaultPids, 4096);
});

test('overrides win over the environment, even over an invalid value', () => {
  assert.is(loadConfig({ DIRECTOR_PORT: '9000' }, { port: 1234 }).port, 1234);
  assert.is(loadConfig({ DIRECTOR_PORT: 'abc' }, { port: 1234 }).port, 1234);
  assert.is(loadConfig({}, { dataDir: '/tmp/x' }).dataDir, '/tmp/x');
});

test('an invalid override is refused naming its variable', () => {
  assert.match(configErrorOf(() => loadConfig({}, { port: -1 })).message, 'DIRECTOR_PORT');
});

test('the WebSocket and webhook settings are read and checked at boot, naming the variable', () => {
  const cfg = loadConfig({
    DIRECTOR_WS_AUTH_GRACE_MS: '300',
    DIRECTOR_ALLOWED_ORIGINS: 'https://ui.example.com, http://localhost:3000',
    DIRECTOR_WEBHOOK_ALLOW_PRIVATE: 'TRUE',
    DIRECTOR_WEBHOOK_ALLOWED_CIDRS: '10.0.0.0/8, fd00::/8',
  });
  assert.is(cfg.wsAuthGraceMs, 300);
  assert.is(cfg.allowedOrigins, 'https://ui.example.com, http://localhost:3000');
  assert.is(cfg.webhookAllowPrivate, true);
  assert.is(cfg.webhookAllowedCidrs, '10.0.0.0/8, fd00::/8');
  for (const [raw, want] of [
    ['1', true],
    ['0', false],
    ['false', false],
    ['', false],
  ] as const)
    assert.is(loadConfig({ DIRECTOR_WEBHOOK_ALLOW_PRIVATE: raw }).webhookAllowPrivate, want, raw);
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_WEBHOOK_ALLOW_PRIVATE: 'yes' })).message, 'DIRECTOR_WEBHOOK_ALLOW_PRIVATE');
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_WS_AUTH_GRACE_MS: '0' })).message, 'DIRECTOR_WS_AUTH_GRACE_MS');
  const cidr = configErrorOf(() => loadConfig({ DIRECTOR_WEBHOOK_ALLOWED_CIDRS: '10.0.0.0/8,10.0.0.0/33' })).message;
  assert.match(cidr, 'DIRECTOR_WEBHOOK_ALLOWED_CIDRS');
  assert.match(cidr, '10.0.0.0/33');
  assert.match(
    configErrorOf(() => loadConfig({ DIRECTOR_ALLOWED_ORIGINS: 'https://*.example.com' })).message,
    /DIRECTOR_ALLOWED_ORIGINS: wildcards/,
  );
  assert.match(configErrorOf(() => loadConfig({ DIRECTOR_ALLOWED_ORIGINS: 'ui.example.com' })).message, 'DIRECTOR_ALLOWED_ORIGINS');
});

test('every setting is read from a DIRECTOR_* variable', () => {
  for (const s of allSettings()) assert.match(s.env, /^DIRECTOR_[A-Z_]+$/);
  assert.is(allSettings().length, Object.keys(SETTINGS).length);
});

test.run();
