/** /metrics: Prometheus text that promtool accepts, with the families operators scrape. */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';

const test = suite('metrics');
let api: TestApi;

test.before(async () => {
  api = await startApi({ networking: 'on' });
});
test.after(async () => {
  await api?.close();
});

test('/metrics passes promtool check and carries every family', async () => {
  const t = api.adminToken;
  const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: t,
    body: { image: 'director/busybox:latest' },
  });
  await call(api.url, 'POST', `/v1/sandboxes/${sb.body.data.id}/execute`, { token: t, body: { command: ['true'] } });
  await call(api.url, 'POST', '/v1/networks', { token: t, body: { name: 'metrics-net', enableDNS: false } });
  await call(api.url, 'GET', '/v1/sandboxes/sbx_0000000000000000', { token: t });
  const res = await fetch(`${api.url}/metrics`);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  // promtool is the reference parser and linter for the exposition format.
  const out = execFileSync('promtool', ['check', 'metrics'], { input: text }).toString();
  assert.is(out.trim(), '', out);
  for (const family of [
    'director_http_requests_total',
    'director_http_request_duration_seconds_bucket',
    'director_sandboxes',
    'director_sandbox_create_duration_seconds_bucket',
    'director_sandbox_start_duration_seconds_bucket',
    'director_exec_duration_seconds_bucket',
    'director_exec_total',
    'director_pool_hits_total',
    'director_pool_misses_total',
    'director_security_events_total',
    'director_network_packets_total',
    'director_network_bytes_total',
    'director_component_up',
    'director_process_cpu_seconds_total',
  ]) {
    assert.ok(text.includes(`\n${family}`) || text.includes(`# TYPE ${family}`), `missing ${family}`);
  }
  // Route templates, never raw ids, as label values.
  assert.match(text, /director_http_requests_total\{route="\/v1\/sandboxes\/:id",method="GET",status="404"\}/);
  assert.not.match(text, /sbx_[A-Za-z0-9_-]{16}/);
});

test('HTTP counters and latency histogram count exactly the requests made, per route, method and status', async () => {
  const t = api.adminToken;
  const value = (text: string, line: string): number =>
    Number(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  const route = 'route="/v1/networks/:id",method="GET"';
  const before = await (await fetch(`${api.url}/metrics`)).text();
  for (let i = 0; i < 7; i++) await call(api.url, 'GET', '/v1/networks/net_0000000000000000', { token: t });
  await call(api.url, 'GET', '/v1/networks/net_0000000000000000');
  const text = await (await fetch(`${api.url}/metrics`)).text();
  const delta = (line: string) => value(text, line) - value(before, line);
  assert.is(delta(`director_http_requests_total{${route},status="404"}`), 7);
  assert.is(delta(`director_http_requests_total{${route},status="401"}`), 1);
  assert.is(delta(`director_http_request_duration_seconds_count{${route}}`), 8);
  // Buckets are cumulative, end at +Inf = count, and the sum is a plausible total of seconds.
  const buckets = [
    ...text.matchAll(
      new RegExp(
        `^director_http_request_duration_seconds_bucket\\{le="([^"]+)",${route.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\} (\\S+)$`,
        'gm',
      ),
    ),
  ].map((m) => [m[1], Number(m[2])] as const);
  assert.is(buckets.length, 15, 'one line per bound plus +Inf');
  for (let i = 1; i < buckets.length; i++)
    assert.ok(buckets[i]![1] >= buckets[i - 1]![1], `bucket le=${buckets[i]![0]} below the previous`);
  assert.is(buckets.at(-1)![0], '+Inf');
  assert.is(buckets.at(-1)![1], value(text, `director_http_request_duration_seconds_count{${route}}`));
  const sum = value(text, `director_http_request_duration_seconds_sum{${route}}`);
  assert.ok(sum > 0 && sum < 8 * 5, `sum ${sum}`);
  // The error summary keeps the envelope's code.
  const errors = await call<{ data: { byCode: Record<string, number> } }>(api.url, 'GET', '/v1/monitoring/errors', { token: t });
  assert.ok((errors.body.data.byCode.AUTHENTICATION_ERROR ?? 0) >= 1, JSON.stringify(errors.body.data.byCode));
  assert.ok((errors.body.data.byCode.NOT_FOUND ?? 0) >= 7, JSON.stringify(errors.body.data.byCode));
});

test('/metrics needs a token from non-loopback clients, and the JSON form needs auth', async () => {
  const json = await call(api.url, 'GET', '/v1/monitoring/metrics');
  assert.is(json.status, 401);
  const ok = await call<{ data: { metrics: { name: string }[] } }>(api.url, 'GET', '/v1/monitoring/metrics', { token: api.adminToken });
  assert.ok(ok.body.data.metrics.some((m) => m.name === 'director_http_requests_total'));
});

test('monitoring stats, errors, health and sampling answer in the envelope', async () => {
  const t = api.adminToken;
  const start = await call(api.url, 'POST', '/v1/monitoring/start', { token: t, body: { intervalMs: 1000 } });
  assert.is(start.status, 200, start.text);
  await new Promise((r) => setTimeout(r, 1500));
  const stats = await call<{ data: { sandboxes: { byState: Record<string, number> }; resources: { sampled: unknown } } }>(
    api.url,
    'GET',
    '/v1/monitoring/stats',
    { token: t },
  );
  assert.is(stats.status, 200);
  assert.ok(stats.body.data.sandboxes.byState.running! >= 1);
  assert.ok(stats.body.data.resources.sampled, 'sampling produced no samples');
  const errors = await call<{ data: { byCode: Record<string, number> } }>(api.url, 'GET', '/v1/monitoring/errors', { token: t });
  assert.ok((errors.body.data.byCode.NOT_FOUND ?? 0) >= 1);
  const health = await call<{ data: { status: string } }>(api.url, 'GET', '/v1/monitoring/health', { token: t });
  assert.is(health.body.data.status, 'healthy');
  const stop = await call<{ data: { stopped: boolean } }>(api.url, 'POST', '/v1/monitoring/stop', { token: t });
  assert.is(stop.body.data.stopped, true);
});

test('the shipped dashboard and alert rules only use metric families /metrics exposes', async () => {
  const { readFileSync } = await import('node:fs');
  const rules = readFileSync(new URL('../../../monitoring/prometheus-alerts.yml', import.meta.url), 'utf8');
  const dashboard = readFileSync(new URL('../../../monitoring/grafana-dashboard.json', import.meta.url), 'utf8');
  execFileSync('promtool', ['check', 'rules', fileURLToPath(new URL('../../../monitoring/prometheus-alerts.yml', import.meta.url))]);
  const text = await (await fetch(`${api.url}/metrics`)).text();
  const exposed = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
  for (const name of new Set([...`${rules}${dashboard}`.matchAll(/director_[a-z_]+/g)].map((m) => m[0]))) {
    const family = name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(exposed.has(family) || exposed.has(name), `${name} is used but not exposed`);
  }
});

test.run();
