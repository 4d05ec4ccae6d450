/**
 * The web console in real headless Chromium against a real server: log in through the form, see a
 * sandbox created through the API appear, see a connection the network policy denies arrive as a
 * live event without reloading, run a command in the terminal, verify the audit chain. The
 * denied connection goes to a host of a fake internet this file creates (test/helpers/fake-internet.ts).
 * A failing test leaves a screenshot in the test output directory (.state/test-output/console; every
 * test does with DIRECTOR_TEST_SCREENSHOTS=all).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildConsole } from '../../../scripts/build-console.ts';
import { ADMIN_PASSWORD, call, startApi, type TestApi } from '../../helpers/api.ts';
import { browserMissing, launchBrowser, screenshotTests, type TestBrowser } from '../../helpers/browser.ts';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { token } from '../../helpers/net-client.ts';
import { BASE, BUSYBOX, eventually } from '../../helpers/runtime.ts';

const test = suite('console (chromium)');
const skip = process.getuid?.() !== 0 ? 'needs root' : browserMissing();
if (skip) console.log(`skipping console browser tests: ${skip}`);
const WEB = '203.0.113.10';

let api: TestApi;
let fi: FakeInternet;
let browser: TestBrowser;
/** What the page did that the tests inspect afterwards. */
const seen = {
  requests: [] as string[],
  sockets: [] as string[],
  cspViolations: [] as string[],
  consoleToken: '',
  /** The newest hub socket: how many times the server accepted its credentials. */
  hub: { authenticated: 0 },
};
let networkId = '';
/** When the console's current session logged in (its access token expires 60 s later). */
let loginAt = 0;
let netSandbox = '';

/** A test that leaves a screenshot named after itself when it fails (all: DIRECTOR_TEST_SCREENSHOTS=all). */
const it = screenshotTests(test, skip, () => browser);

test.before(async () => {
  if (skip) return;
  try {
    await buildConsole();
    fi = await startFakeInternet({ webHosts: [WEB], ipv6: false, publicResolver: null });
    // Tokens of the shortest lifetime allowed, so the last test sees the console outlive one.
    api = await startApi({ networking: 'on', jwtTtlMs: 60_000 });
    browser = await launchBrowser({ outputSubdir: 'console' });
    const { page } = browser;
    page.setDefaultTimeout(20_000);
    page.on('request', (r) => seen.requests.push(r.url()));
    page.on('websocket', (ws) => {
      seen.sockets.push(ws.url());
      if (!ws.url().endsWith('/v1/ws')) return;
      const hub = { authenticated: 0 };
      seen.hub = hub;
      ws.on('framereceived', (f) => {
        if (typeof f.payload === 'string' && f.payload.includes('"type":"authenticated"')) hub.authenticated++;
      });
    });
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) seen.cspViolations.push(m.text());
    });
    page.on('response', (r) => {
      if (r.url().endsWith('/v1/auth/login') && r.status() === 200)
        void r.json().then((b: { data?: { token?: string } }) => (seen.consoleToken = b.data?.token ?? ''));
    });
  } catch (err) {
    console.error('console test setup failed:', err);
    throw err;
  }
});

test.after(async () => {
  await browser?.close();
  await api?.close();
  await fi?.close();
});

/** Sets a marker on the page's window: it survives everything but a reload. */
// Page-side code is passed as strings: this file is type-checked without the DOM library.
const mark = () => browser.page.evaluate('window.__directorTestMark = 1');
const marked = async () => (await browser.page.evaluate<boolean>('window.__directorTestMark === 1')) === true;
/** The page's `document`, as far as the predicates below use it. */
interface PageGlobal {
  document: { querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null };
}
/**
 * Waits until the text of `selector` matches `re`. A function, not a string: the console's CSP
 * forbids eval, and Playwright evaluates string predicates with it.
 */
const textMatches = (selector: string, re: RegExp) =>
  browser.page.waitForFunction(
    ([sel, source, flags]) =>
      new RegExp(source, flags).test((globalThis as unknown as PageGlobal).document.querySelector(sel)?.textContent ?? ''),
    [selector, re.source, re.flags] as const,
    { timeout: 15_000 },
  );
const terminalShows = (re: RegExp) => textMatches('[data-testid=terminal] .xterm-rows', re);

it('serves the console under a strict Content-Security-Policy', async () => {
  const res = await fetch(`${api.url}/console`);
  assert.is(res.status, 200);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.not.match(csp, /unsafe-inline|unsafe-eval|https?:/);
  const html = await res.text();
  assert.not.match(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'an inline script');
});

it('logs in with username and password and keeps the token out of storage, cookies and URLs', async () => {
  const { page } = browser;
  await page.goto(`${api.url}/console`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', 'wrong-password-123');
  await page.click('button[type=submit]');
  await page.waitForSelector('.login-form .error');
  await page.fill('input[name=password]', ADMIN_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=whoami]:has-text("admin")');
  await page.waitForSelector('[data-testid=hub-status].hub-live');
  assert.ok(seen.consoleToken.length > 20, 'the login response was not seen');
  const stored = await page.evaluate<{ local: number; session: number; cookie: string; href: string }>(
    '({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie, href: location.href })',
  );
  assert.equal([stored.local, stored.session, stored.cookie], [0, 0, '']);
  for (const url of [stored.href, ...seen.requests, ...seen.sockets]) assert.not.ok(url.includes(seen.consoleToken), `token in ${url}`);
  assert.ok(
    seen.sockets.some((u) => u.endsWith('/v1/ws')),
    'the hub socket was not opened',
  );
});

it('shows a sandbox created through the API without a reload', async () => {
  const { page } = browser;
  await page.click('nav a:has-text("Sandboxes")');
  await page.waitForSelector('#sandboxes');
  await mark();
  const res = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body: { image: BUSYBOX, name: 'made-by-the-api' },
  });
  assert.is(res.status, 201, res.text);
  const id = res.body.data.id;
  const row = page.locator(`tr.sandbox-row[data-id="${id}"]`);
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.innerText(), /made-by-the-api/);
  assert.is(await row.getAttribute('data-status'), 'running');
  assert.ok(await marked(), 'the page reloaded');
});

it('a connection the network policy denies arrives on the events view live', async () => {
  const { page } = browser;
  const net = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/networks', {
    token: api.adminToken,
    body: { name: `console-${token()}`, enableDNS: false },
  });
  assert.is(net.status, 201, net.text);
  networkId = net.body.data.id;
  const applied = await call(api.url, 'POST', `/v1/networks/${networkId}/policies`, {
    token: api.adminToken,
    body: { name: 'no-fake-web', outbound: [{ action: 'deny', protocol: 'tcp', destination: `${WEB}/32` }] },
  });
  assert.is(applied.status, 200, applied.text);
  const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body: { image: BASE, securityPolicy: { allowNetwork: true }, networkMode: networkId },
  });
  assert.is(sb.status, 201, sb.text);
  netSandbox = sb.body.data.id;

  await page.click('nav a:has-text("Events")');
  await page.waitForSelector('#events');
  await page.waitForSelector('[data-testid=hub-status].hub-live');
  await mark();
  await fi.assertRoute(WEB);
  const t = token();
  const probe = `import socket\ns=socket.socket(); s.settimeout(1.5)\ntry:\n  s.connect(("${WEB}", 80)); s.sendall(b"${t}\\n"); print("connected")\nexcept Exception as e:\n  print("refused", type(e).__name__)`;
  const run = await call<{ data: { stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${netSandbox}/execute`, {
    token: api.adminToken,
    body: { command: ['python3', '-c', probe], timeout: 10_000 },
  });
  assert.is(run.status, 200, run.text);
  assert.match(run.body.data.stdout, /refused/);
  const row = page.locator(`tr.event-row[data-type="egress_denied"]:has-text("${netSandbox}")`).first();
  await row.waitFor({ timeout: 15_000 });
  assert.match(await row.innerText(), new RegExp(WEB.replaceAll('.', '\\.')));
  assert.ok(await marked(), 'the page reloaded');
  assert.is(fi.received((o) => o.kind === 'tcp' && o.data.includes(t)).length, 0, 'the denied connection reached the host');

  // The network view reads the policy back from the kernel, with the deny rule's counter.
  await page.click(`tr.event-row[data-type="egress_denied"] a[href="#/networks/${networkId}"] >> nth=0`);
  await page.waitForSelector('#policy tr.rule-row');
  const rule = await page.locator('#policy tr.rule-row').first().innerText();
  assert.match(rule, /deny/);
  assert.match(rule, /203\.0\.113\.10/);
});

it('opens a terminal in the sandbox and runs a command', async () => {
  const { page } = browser;
  loginAt = Date.now();
  await page.goto(`${api.url}/console#/sandboxes/${netSandbox}`);
  // A reload asks for the password again: the tokens lived only in the page's memory.
  await page.reload();
  await page.waitForSelector('.login-form');
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', ADMIN_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('#sandbox');
  await page.click('[data-testid=open-terminal]');
  const rows = page.locator('[data-testid=terminal] .xterm-rows');
  await terminalShows(/\$/);
  await page.locator('[data-testid=terminal]').click();
  await page.keyboard.type('echo console-$((6*7)) && id -u');
  await page.keyboard.press('Enter');
  // `id -u` is a second process: its line may reach the page in a later frame than console-42's.
  await terminalShows(/console-42\s*1000/);
  const text = (await rows.textContent()) ?? '';
  assert.match(text, /console-42\s*1000/);
  // The metrics panel has sampled the running sandbox meanwhile.
  await page.waitForFunction(
    () => ((globalThis as unknown as PageGlobal).document.querySelector('#spark-memory polyline')?.getAttribute('points') ?? '') !== '',
    undefined,
    { timeout: 45_000 },
  );
  assert.equal(seen.cspViolations, [], 'the page broke its own Content-Security-Policy');
});

it('verifies the audit chain', async () => {
  const { page } = browser;
  await page.click('nav a:has-text("Audit log")');
  await page.waitForSelector('tr.audit-row');
  assert.ok((await page.locator('tr.audit-row:has-text("POST /v1/sandboxes")').count()) > 0, 'the sandbox creates are not in the log');
  await page.click('[data-testid=verify]');
  const result = page.locator('[data-testid=verify-result]');
  await result.waitFor();
  assert.match(await result.innerText(), /Chain intact: \d+ entries/);
});

it('outlives its access token: refreshes it and re-authenticates the live stream', async () => {
  const { page } = browser;
  await page.click('nav a:has-text("Sandboxes")');
  await page.waitForSelector('#sandboxes');
  const hubSockets = () => seen.sockets.filter((u) => u.endsWith('/v1/ws')).length;
  const socketsBefore = hubSockets();
  const hubAtStart = seen.hub;
  await page.waitForRequest((r) => r.url().endsWith('/v1/auth/refresh'), { timeout: 70_000 });
  // The fresh token went to the open hub socket as `auth`, and the server accepted it there.
  await eventually(() => hubAtStart.authenticated >= 2, 10_000);
  // Past the first token's expiry, and past a heartbeat that re-checks socket credentials.
  await new Promise((r) => setTimeout(r, Math.max(0, loginAt + 62_000 - Date.now())));
  await mark();
  const fresh = (await api.auth.login('admin', ADMIN_PASSWORD)).token;
  const res = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: fresh,
    body: { image: BUSYBOX, name: 'after-the-refresh' },
  });
  assert.is(res.status, 201, res.text);
  await page.locator(`tr.sandbox-row[data-id="${res.body.data.id}"]`).waitFor({ timeout: 10_000 });
  assert.ok(await page.locator('[data-testid=hub-status].hub-live').isVisible(), 'the hub is not live');
  assert.not.ok(await page.locator('.login-form').isVisible(), 'the session ended');
  assert.ok(await marked(), 'the page reloaded');
  assert.is(hubSockets(), socketsBefore, 'the hub socket was replaced');
});

test.run();
