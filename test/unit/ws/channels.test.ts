import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sandboxMapper, securityMapper } from '../../../api/ws/channels.ts';
import { originAllowed } from '../../../api/ws/origin.ts';
import { resolveWsOptions } from '../../../api/ws/options.ts';
import { loadConfig } from '../../../runtime/config.ts';
import type { SecurityEvent } from '../../../runtime/events.ts';

const event = (over: Partial<SecurityEvent>): SecurityEvent => ({
  id: 'evt_1',
  seq: 7,
  type: 'exec_denied',
  severity: 'medium',
  timestamp: '2024-01-01T00:00:00.000Z',
  workspace: 'wsp_1',
  sandboxId: null,
  networkId: null,
  sessionId: null,
  actor: null,
  details: {},
  ...over,
});

test("security events travel whole; alerts in the Director Protocol's shape", () => {
  const e = event({});
  assert.equal(securityMapper(e), { type: 'security_event', data: e });
  const alert = securityMapper(
    event({
      type: 'security_alert',
      severity: 'high',
      details: { rule: 'HIGH_ERROR_RATE', message: 'Error rate exceeded threshold', extra: 'x' },
    }),
  );
  assert.equal(alert, {
    type: 'security_alert',
    data: {
      alert: { rule: 'HIGH_ERROR_RATE', severity: 'high', message: 'Error rate exceeded threshold', timestamp: '2024-01-01T00:00:00.000Z' },
    },
  });
  // As the alert engine stores it: nested under details.alert, next to its counters.
  const fired = { rule: 'EXEC_DENIED_BURST', severity: 'critical', message: 'many denied execs', timestamp: '2024-01-01T00:00:05.000Z' };
  const nested = securityMapper(event({ type: 'security_alert', severity: 'critical', details: { alert: fired, count: 5, threshold: 5 } }));
  assert.equal(nested, { type: 'security_alert', data: { alert: fired } });
});

test('sandbox lifecycle events become sandbox_event; others are not on the channel', () => {
  const m = sandboxMapper(
    event({ type: 'sandbox_exited', sandboxId: 'sbx_1', details: { status: 'stopped', exitCode: 137, oomKilled: true } }),
  );
  assert.equal(m, {
    type: 'sandbox_event',
    data: { sandboxId: 'sbx_1', event: 'exited', status: 'stopped', timestamp: '2024-01-01T00:00:00.000Z', exitCode: 137 },
  });
  assert.is(sandboxMapper(event({ type: 'exec_denied', sandboxId: 'sbx_1' })), null);
  assert.is(sandboxMapper(event({ type: 'sandbox_created' })), null, 'no sandbox id');
  assert.is(sandboxMapper(event({ type: 'constructor', sandboxId: 'sbx_1' })), null);
});

test('Origin: absent passes; otherwise the allowed list, or the own host when the list is empty', () => {
  assert.ok(originAllowed(undefined, 'api.local:8080', []));
  assert.ok(originAllowed('http://api.local:8080', 'api.local:8080', []));
  assert.ok(originAllowed('https://API.local', 'api.local', []));
  assert.ok(originAllowed('http://api.local', 'api.local:80', []), 'default port');
  assert.not.ok(originAllowed('http://evil.example', 'api.local:8080', []));
  assert.not.ok(originAllowed('http://api.local:9090', 'api.local:8080', []));
  assert.not.ok(originAllowed('null', 'api.local', []));
  assert.not.ok(originAllowed('http://api.local', undefined, []));
  assert.ok(originAllowed('https://ui.example.com', 'api.local', ['https://ui.example.com']));
  assert.not.ok(originAllowed('http://api.local', 'api.local', ['https://ui.example.com']), 'a list replaces the own-host default');
  assert.not.ok(originAllowed('https://ui.example.com.evil.example', 'api.local', ['https://ui.example.com']));
});

test('options: explicit beats env beats default; bad values name the variable', () => {
  // The environment reaches the WebSocket options through the one settings table, validated at boot.
  const env = (vars: Record<string, string>) => loadConfig(vars, { dataDir: '/tmp/x' });
  assert.is(resolveWsOptions({}, env({})).authGraceMs, 5000);
  assert.is(resolveWsOptions({}, env({ DIRECTOR_WS_AUTH_GRACE_MS: '300' })).authGraceMs, 300);
  assert.is(resolveWsOptions({ authGraceMs: 50 }, env({ DIRECTOR_WS_AUTH_GRACE_MS: '300' })).authGraceMs, 50);
  assert.throws(() => resolveWsOptions({}, env({ DIRECTOR_WS_AUTH_GRACE_MS: 'soon' })), /DIRECTOR_WS_AUTH_GRACE_MS/);
  assert.equal(resolveWsOptions({}, env({ DIRECTOR_ALLOWED_ORIGINS: ' https://a.example , http://b.example:8080/ ' })).allowedOrigins, [
    'https://a.example',
    'http://b.example:8080',
  ]);
  assert.throws(() => resolveWsOptions({}, env({ DIRECTOR_ALLOWED_ORIGINS: '*' })), /DIRECTOR_ALLOWED_ORIGINS: wildcards/);
  assert.throws(() => resolveWsOptions({}, env({ DIRECTOR_ALLOWED_ORIGINS: 'https://a.example/path' })), /DIRECTOR_ALLOWED_ORIGINS/);
  assert.equal(resolveWsOptions({}, {}).queue, { maxMessages: 1000, maxBytes: 4 * 1024 * 1024, highWaterBytes: 256 * 1024 });
});

test.run();
