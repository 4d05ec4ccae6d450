/**
 * The Security API over real HTTP and the real engine: profiles as ceilings at create,
 * workspace inheritance, enforcement on running sandboxes, the one event stream (list, paging,
 * summary, NDJSON/OCSF export) and alerts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-security');
let api: TestApi;
let t = '';

interface Profile {
  id: string;
  name: string;
  builtin: boolean;
  constraints: Record<string, unknown>;
}
interface Ev {
  id: string;
  seq: number;
  type: string;
  severity: string;
  timestamp: string;
  workspace: string | null;
  sandboxId: string | null;
  actor: string | null;
  details: Record<string, unknown>;
}
interface Page {
  items: Ev[];
  nextCursor: string | null;
  hasMore: boolean;
}

const OPEN = {
  allowFilesystem: true,
  allowNetwork: true,
  allowExec: true,
  maxProcesses: 1024,
  maxOpenFiles: 1024,
  readOnlyRoot: false,
  noPrivileges: true,
};

const profile = async (name: string, constraints: Record<string, unknown>) => {
  const r = await call<{ data: Profile }>(api.url, 'POST', '/v1/security/profiles', {
    token: t,
    body: { name, description: `test ${name}`, level: 'custom', constraints: { ...OPEN, ...constraints } },
  });
  assert.is(r.status, 201, r.text);
  return r.body.data;
};
const sandbox = async (body: Record<string, unknown>) => {
  const r = await call<{ data: { id: string; resourceLimits: { pids: number }; securityPolicy: Record<string, unknown> } }>(
    api.url,
    'POST',
    '/v1/sandboxes',
    { token: t, body: { image: BUSYBOX, ...body } },
  );
  return r;
};
const events = async (query: string) => {
  const r = await call<{ data: Page }>(api.url, 'GET', `/v1/security/events?${query}`, { token: t });
  assert.is(r.status, 200, r.text);
  return r.body.data;
};

test.before(async () => {
  api = await startApi({ networking: 'on' });
  t = api.adminToken;
});
test.after(async () => {
  await api?.close();
});

test('built-in profiles are listed for every workspace and are read-only', async () => {
  const list = await call<{ data: { items: Profile[] } }>(api.url, 'GET', '/v1/security/profiles', { token: t });
  assert.is(list.status, 200, list.text);
  const names = list.body.data.items.filter((p) => p.builtin).map((p) => p.name);
  for (const n of ['low', 'medium', 'high', 'locked-down']) assert.ok(names.includes(n), n);
  const high = list.body.data.items.find((p) => p.name === 'high')!;
  const put = await call(api.url, 'PATCH', `/v1/security/profiles/${high.id}`, { token: t, body: { description: 'mine now' } });
  assert.is(put.status, 403, put.text);
});

test('profile CRUD: create, get, patch, replace, delete', async () => {
  const p = await profile('crud', { maxProcesses: 100 });
  assert.match(p.id, /^prf_/);
  const got = await call<{ data: Profile }>(api.url, 'GET', `/v1/security/profiles/${p.id}`, { token: t });
  assert.is(got.body.data.constraints.maxProcesses, 100);
  const patched = await call<{ data: Profile }>(api.url, 'PATCH', `/v1/security/profiles/${p.id}`, {
    token: t,
    body: { constraints: { maxProcesses: 50 } },
  });
  assert.is(patched.status, 200, patched.text);
  assert.equal(patched.body.data.constraints, { ...OPEN, maxProcesses: 50 });
  const replaced = await call<{ data: Profile }>(api.url, 'PUT', `/v1/security/profiles/${p.id}`, {
    token: t,
    body: { name: 'crud2', level: 'high', constraints: OPEN },
  });
  assert.is(replaced.body.data.name, 'crud2');
  const bad = await call(api.url, 'POST', '/v1/security/profiles', {
    token: t,
    body: { name: 'x', level: 'custom', constraints: { ...OPEN, noPrivileges: false } },
  });
  assert.is(bad.status, 400);
  assert.is(bad.body.error?.details.field, 'constraints.noPrivileges');
  assert.is((await call(api.url, 'DELETE', `/v1/security/profiles/${p.id}`, { token: t })).status, 200);
  assert.is((await call(api.url, 'GET', `/v1/security/profiles/${p.id}`, { token: t })).status, 404);
});

test('a create asking for more than its profile allows is refused naming the profile, and recorded', async () => {
  const p = await profile('no-net', { allowNetwork: false, maxProcesses: 32 });
  const r = await sandbox({ profileId: p.id, securityPolicy: { allowNetwork: true }, networkMode: 'isolated' });
  assert.is(r.status, 400, r.text);
  assert.is(r.body.error?.code, 'VALIDATION_ERROR');
  assert.is(r.body.error?.details.field, 'securityPolicy.allowNetwork');
  assert.equal(r.body.error?.details.deniedBy, { level: 'profile', id: p.id, name: 'no-net' });
  const over = await sandbox({ profileId: p.id, resourceLimits: { pids: 64 } });
  assert.is(over.status, 400);
  assert.is(over.body.error?.details.field, 'resourceLimits.pids');
  const page = await events('type=policy_violation&limit=100');
  const ev = page.items.find((e) => e.details.field === 'securityPolicy.allowNetwork');
  assert.ok(ev, 'policy_violation event recorded');
  assert.is(ev.details.level, 'profile');
  assert.equal(ev.details.deniedBy, { level: 'profile', id: p.id, name: 'no-net' });
  assert.is(ev.severity, 'medium');
  assert.ok(ev.actor);
});

test("a create within its profile gets the profile's limits (pids, open files)", async () => {
  const p = await profile('narrow', { allowNetwork: false, maxProcesses: 40, maxOpenFiles: 200 });
  const r = await sandbox({ profileId: p.id });
  assert.is(r.status, 201, r.text);
  assert.is(r.body.data.resourceLimits.pids, 40);
  const m = await call<{ data: { pids: { limit: number } } }>(api.url, 'GET', `/v1/sandboxes/${r.body.data.id}/metrics`, { token: t });
  assert.is(m.body.data.pids.limit, 40);
  const exec = await call<{ data: { stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${r.body.data.id}/execute`, {
    token: t,
    body: { command: 'ulimit -n' },
  });
  assert.is(exec.body.data.stdout.trim(), '200');
  const narrower = await sandbox({ profileId: p.id, resourceLimits: { pids: 16 } });
  assert.is(narrower.status, 201, narrower.text);
  assert.is(narrower.body.data.resourceLimits.pids, 16);
});

test('the workspace default profile is the outer ceiling; a wider profile or request is refused naming the workspace', async () => {
  const list = await call<{ data: { items: Profile[] } }>(api.url, 'GET', '/v1/security/profiles', { token: t });
  const high = list.body.data.items.find((p) => p.name === 'high')!;
  const low = list.body.data.items.find((p) => p.name === 'low')!;
  const set = await call(api.url, 'PUT', '/v1/security/workspace-profile', { token: t, body: { profileId: high.id } });
  assert.is(set.status, 200, set.text);
  try {
    const fs = await sandbox({ securityPolicy: { allowFilesystem: true } });
    assert.is(fs.status, 400, fs.text);
    assert.is((fs.body.error?.details.deniedBy as { level: string }).level, 'workspace');
    const wider = await sandbox({ profileId: low.id });
    assert.is(wider.status, 400, wider.text);
    assert.is(wider.body.error?.details.field, 'profileId');
    assert.is((wider.body.error?.details.deniedBy as { level: string }).level, 'workspace');
    const ok = await sandbox({});
    assert.is(ok.status, 201, ok.text);
    assert.is(ok.body.data.securityPolicy.allowFilesystem, false);
    assert.is(ok.body.data.resourceLimits.pids, 64);
  } finally {
    await call(api.url, 'PUT', '/v1/security/workspace-profile', { token: t, body: { profileId: null } });
  }
  const cleared = await call<{ data: { profile: unknown } }>(api.url, 'GET', '/v1/security/workspace-profile', { token: t });
  assert.is(cleared.body.data.profile, null);
});

test("enforcing a profile lowers a running sandbox's pids limit live and stops one that cannot comply", async () => {
  const live = await sandbox({});
  assert.is(live.status, 201, live.text);
  const net = await sandbox({ securityPolicy: { allowNetwork: true }, networkMode: 'isolated' });
  assert.is(net.status, 201, net.text);
  const p = await profile('enforced', { maxProcesses: 32, allowNetwork: false });
  const r1 = await call<{ data: { sandboxes: { sandboxId: string; changes: { field: string; action: string }[]; stopped: boolean }[] } }>(
    api.url,
    'POST',
    `/v1/security/policies/${p.id}/enforce`,
    { token: t, body: { scope: { sandboxId: live.body.data.id } } },
  );
  assert.is(r1.status, 200, r1.text);
  assert.equal(r1.body.data.sandboxes, [
    {
      sandboxId: live.body.data.id,
      changes: [{ field: 'resourceLimits.pids', from: 256, to: 32, action: 'updated_live' }],
      stopped: false,
    },
  ]);
  const m = await call<{ data: { pids: { limit: number } } }>(api.url, 'GET', `/v1/sandboxes/${live.body.data.id}/metrics`, { token: t });
  assert.is(m.body.data.pids.limit, 32);
  const view = await call<{ data: { status: string; resourceLimits: { pids: number } } }>(
    api.url,
    'GET',
    `/v1/sandboxes/${live.body.data.id}`,
    { token: t },
  );
  assert.is(view.body.data.status, 'running');
  assert.is(view.body.data.resourceLimits.pids, 32);

  const r2 = await call<{
    data: { sandboxes: { sandboxId: string; changes: { field: string; action: string }[]; stopped: boolean }[] };
  }>(api.url, 'POST', `/v1/security/policies/${p.id}/enforce`, {
    token: t,
    body: { scope: { sandboxId: net.body.data.id } },
  });
  assert.is(r2.status, 200, r2.text);
  const [s] = r2.body.data.sandboxes;
  assert.is(s?.stopped, true);
  assert.ok(s?.changes.some((c) => c.field === 'securityPolicy.allowNetwork' && c.action === 'requires_stop'));
  const stopped = await call<{ data: { status: string } }>(api.url, 'GET', `/v1/sandboxes/${net.body.data.id}`, { token: t });
  assert.is(stopped.body.data.status, 'stopped');
  const enforced = await events(`type=policy_enforced&sandboxId=${net.body.data.id}`);
  assert.is(enforced.items[0]?.details.stopped, true);
});

test("enforcing with a sessionId reaches the session's running sandboxes: a network policy their networks, a profile each; another workspace's session is 404", async () => {
  const ses = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sessions', {
    token: t,
    body: { type: 'director', name: 'enforced' },
  });
  assert.is(ses.status, 201, ses.text);
  const inSession = await sandbox({ sessionId: ses.body.data.id, securityPolicy: { allowNetwork: true }, networkMode: 'isolated' });
  assert.is(inSession.status, 201, inSession.text);
  const outside = await sandbox({ securityPolicy: { allowNetwork: true }, networkMode: 'isolated' });
  assert.is(outside.status, 201, outside.text);
  type Net = { data: { networkId: string; policyInForce: { generation: number | null } | null } };
  const netOf = async (id: string) => (await call<Net>(api.url, 'GET', `/v1/sandboxes/${id}/network-policy`, { token: t })).body.data;
  const mine = await netOf(inSession.body.data.id);
  const theirs = await netOf(outside.body.data.id);

  const r = await call<{ data: { networks: unknown[]; sessions: unknown[] } }>(api.url, 'POST', '/v1/security/policies/deny-all/enforce', {
    token: t,
    body: { scope: { sessionId: ses.body.data.id } },
  });
  assert.is(r.status, 200, r.text);
  assert.equal(r.body.data.networks, [{ networkId: mine.networkId, applied: true, policy: 'deny-all' }]);
  assert.equal(r.body.data.sessions, [{ sessionId: ses.body.data.id, applied: true, sandboxIds: [inSession.body.data.id] }]);
  // In force in the kernel: a new generation of the session's network's chains, the other's untouched.
  assert.ok((await netOf(inSession.body.data.id)).policyInForce!.generation! > mine.policyInForce!.generation!);
  assert.is((await netOf(outside.body.data.id)).policyInForce!.generation, theirs.policyInForce!.generation);

  const p = await profile('session-wide', { maxProcesses: 40 });
  const rp = await call<{ data: { sandboxes: { sandboxId: string }[] } }>(api.url, 'POST', `/v1/security/policies/${p.id}/enforce`, {
    token: t,
    body: { scope: { sessionId: ses.body.data.id } },
  });
  assert.is(rp.status, 200, rp.text);
  assert.equal(
    rp.body.data.sandboxes.map((s) => s.sandboxId),
    [inSession.body.data.id],
  );

  const ws = await call(api.url, 'POST', '/v1/workspaces', { token: t, body: { name: 'enforce-other' } });
  assert.is(ws.status, 201, ws.text);
  const other = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sessions', {
    token: t,
    headers: { 'x-director-workspace': 'enforce-other' },
    body: { type: 'director', name: 'not yours' },
  });
  assert.is(other.status, 201, other.text);
  for (const policyId of ['deny-all', p.id]) {
    const foreign = await call(api.url, 'POST', `/v1/security/policies/${policyId}/enforce`, {
      token: t,
      body: { scope: { sessionId: other.body.data.id } },
    });
    assert.is(foreign.status, 404, foreign.text);
    assert.is(foreign.body.error?.code, 'NOT_FOUND');
  }
});

test('enforcing allowExec=false makes execute refuse from then on, recorded as exec_denied', async () => {
  const s = await sandbox({});
  const p = await profile('no-exec', { allowExec: false });
  const r = await call(api.url, 'POST', `/v1/security/policies/${p.id}/enforce`, {
    token: t,
    body: { scope: { sandboxId: s.body.data.id } },
  });
  assert.is(r.status, 200, r.text);
  const exec = await call(api.url, 'POST', `/v1/sandboxes/${s.body.data.id}/execute`, { token: t, body: { command: 'true' } });
  assert.is(exec.status, 403, exec.text);
  const page = await events(`type=exec_denied&sandboxId=${s.body.data.id}`);
  assert.is(page.items.length, 1);
  const [e] = page.items;
  assert.is(e?.sandboxId, s.body.data.id);
  assert.is(e?.severity, 'medium');
  assert.ok(e?.workspace);
});

test('enforcing a shipped network policy applies it to the network', async () => {
  const net = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/networks', { token: t, body: { name: 'sec-net' } });
  assert.is(net.status, 201, net.text);
  const r = await call<{ data: { networks: unknown[] } }>(api.url, 'POST', '/v1/security/policies/deny-all/enforce', {
    token: t,
    body: { scope: { networkId: net.body.data.id } },
  });
  assert.is(r.status, 200, r.text);
  assert.equal(r.body.data.networks, [{ networkId: net.body.data.id, applied: true, policy: 'deny-all' }]);
  const got = await call<{ data: { policy: { name: string } } }>(api.url, 'GET', `/v1/networks/${net.body.data.id}`, { token: t });
  assert.is(got.body.data.policy.name, 'deny-all');
  assert.is(
    (
      await call(api.url, 'POST', '/v1/security/policies/no-such-policy/enforce', {
        token: t,
        body: { scope: { networkId: net.body.data.id } },
      })
    ).status,
    404,
  );
  assert.is((await call(api.url, 'POST', '/v1/security/policies/deny-all/enforce', { token: t, body: { scope: {} } })).status, 400);
});

test('auth failures and lifecycle events arrive in the stream with their fields', async () => {
  const bad = await call(api.url, 'GET', '/v1/sandboxes', { token: 'not-a-valid-token' });
  assert.is(bad.status, 401);
  const auth = await events('type=auth_failed');
  const e = auth.items.at(-1);
  assert.ok(e);
  assert.is(e.workspace, null, 'host-level: no workspace known');
  assert.match(String(e.actor), /^ip:/);
  assert.is(e.details.route, '/v1/sandboxes');
  const s = await sandbox({});
  const life = await events(`type=sandbox_created&sandboxId=${s.body.data.id}`);
  assert.is(life.items.length, 1);
  assert.is(life.items[0]?.severity, 'info');
  assert.match(String(life.items[0]?.id), /^evt_/);
  assert.ok(Number.isInteger(life.items[0]?.seq));
  assert.ok(!Number.isNaN(Date.parse(String(life.items[0]?.timestamp))));
  const high = await events('minSeverity=high&limit=500');
  assert.ok(high.items.every((x) => x.severity === 'high' || x.severity === 'critical'));
  assert.is((await call(api.url, 'GET', '/v1/security/events?since=yesterday', { token: t })).status, 400);
});

test('paging with after walks the whole stream once', async () => {
  const all = await events('limit=1000');
  const seen: number[] = [];
  let cursor = '';
  for (;;) {
    const page = await events(`limit=3${cursor ? `&after=${cursor}` : ''}`);
    seen.push(...page.items.map((e) => e.seq));
    if (!page.hasMore) break;
    cursor = page.nextCursor!;
  }
  assert.equal(
    seen.slice(0, all.items.length),
    all.items.map((e) => e.seq),
  );
  assert.is(new Set(seen).size, seen.length);
});

test('repeated policy violations raise an alert listed as active', async () => {
  for (let i = 0; i < 5; i++) await sandbox({ privileged: true });
  const alerts = await call<{ data: { items: { rule: string; severity: string }[] } }>(api.url, 'GET', '/v1/security/alerts', { token: t });
  assert.is(alerts.status, 200, alerts.text);
  assert.ok(
    alerts.body.data.items.some((a) => a.rule === 'REPEATED_POLICY_VIOLATIONS'),
    alerts.text,
  );
  const fired = await events('type=security_alert');
  const a = fired.items.find((x) => (x.details.alert as { rule: string }).rule === 'REPEATED_POLICY_VIOLATIONS');
  assert.ok(a);
  assert.equal(Object.keys(a.details.alert as object).sort(), ['message', 'rule', 'severity', 'timestamp']);
});

test('the summary answers with counts, offenders and a 12-bucket trend', async () => {
  const r = await call<{
    data: { total: number; byType: Record<string, number>; bySeverity: Record<string, number>; topOffenders: unknown[]; trend: unknown[] };
  }>(api.url, 'GET', '/v1/security/events/summary?window=24h', { token: t });
  assert.is(r.status, 200, r.text);
  assert.ok(r.body.data.total > 0);
  assert.ok(r.body.data.byType.policy_violation! >= 1);
  assert.is(r.body.data.trend.length, 12);
  assert.ok(Array.isArray(r.body.data.topOffenders));
});

test('the export streams NDJSON with schemaVersion and an OCSF class per event', async () => {
  const res = await fetch(
    `${api.url}/v1/security/events/export?since=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`,
    { headers: { authorization: `Bearer ${t}` } },
  );
  assert.is(res.status, 200);
  assert.match(String(res.headers.get('content-type')), /^application\/x-ndjson/);
  const lines = (await res.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { schemaVersion: string; type: string; seq: number; ocsf: { class_uid: number; severity_id: number } });
  assert.ok(lines.length > 5);
  assert.ok(lines.every((l) => l.schemaVersion === '1.0' && l.ocsf.severity_id >= 1 && l.ocsf.severity_id <= 5));
  assert.is(lines.find((l) => l.type === 'policy_violation')?.ocsf.class_uid, 2004);
  assert.is(lines.find((l) => l.type === 'auth_failed')?.ocsf.class_uid, 3002);
  assert.is(lines.find((l) => l.type === 'exec_denied')?.ocsf.class_uid, 1007);
  for (let i = 1; i < lines.length; i++) assert.ok(lines[i]!.seq > lines[i - 1]!.seq);
});

test('the events API needs security:read', async () => {
  assert.is((await call(api.url, 'GET', '/v1/security/events')).status, 401);
});

test.run();
