/**
 * The console's orchestration views in real headless Chromium against a real server: a session
 * created through the API appears in the list and its state changes live; a workflow started
 * through the API shows its progress live and ends `completed` without a reload; a tool call
 * that waits for approval (a chat turn against a local fake OpenAI-compatible provider speaking
 * streamed tool calls, loopback only: test/helpers/fake-llm.ts) appears in the approvals queue,
 * and clicking Approve lets the tool run. Polls in these views are 30 s, longer than any wait
 * here: what arrives arrives over the WebSocket. A failing test leaves a screenshot in
 * .state/test-output/console-orch.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildConsole } from '../../../scripts/build-console.ts';
import { ADMIN_PASSWORD, call } from '../../helpers/api.ts';
import { browserMissing, launchBrowser, screenshotTests, type TestBrowser } from '../../helpers/browser.ts';
import { startChatApi, type ChatApi } from '../../helpers/chat.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';
import type { SseResult } from '../../helpers/sse.ts';

const test = suite('console orchestration (chromium)');
const skip = process.getuid?.() !== 0 ? 'needs root' : browserMissing();
if (skip) console.log(`skipping console browser tests: ${skip}`);

let c: ChatApi;
let browser: TestBrowser;
let sessionId = '';
/** A test that leaves a screenshot named after itself when it fails (all: DIRECTOR_TEST_SCREENSHOTS=all). */
const it = screenshotTests(test, skip, () => browser);

test.before(async () => {
  if (skip) return;
  await buildConsole();
  c = await startChatApi('openai', { llmTimeoutMs: 10_000 });
  browser = await launchBrowser({ outputSubdir: 'console-orch' });
  browser.page.setDefaultTimeout(20_000);
});

test.after(async () => {
  await browser?.close();
  await c?.close();
});

const mark = () => browser.page.evaluate('window.__directorTestMark = 1');
const marked = async () => (await browser.page.evaluate<boolean>('window.__directorTestMark === 1')) === true;
interface PageGlobal {
  document: { querySelector(selector: string): unknown };
}
/** Waits until every selector matches at once (a function: the console's CSP forbids eval). */
const allAtOnce = (selectors: string[], timeout = 20_000) =>
  browser.page.waitForFunction(
    (sels) => sels.every((s) => (globalThis as unknown as PageGlobal).document.querySelector(s) !== null),
    selectors,
    { timeout },
  );

it('logs in and shows the orchestration views in the navigation', async () => {
  const { page } = browser;
  await page.goto(`${c.api.url}/console`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', ADMIN_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=hub-status].hub-live');
  for (const title of ['Sessions', 'Workflows', 'Approvals'])
    assert.ok(await page.locator(`nav a:has-text("${title}")`).isVisible(), title);
});

it('a session created through the API appears in the list, and its state changes live', async () => {
  const { page } = browser;
  await page.click('nav a:has-text("Sessions")');
  await page.waitForSelector('#sessions');
  await mark();
  const s = await c.post<{ id: string }>('/v1/sessions', { name: 'made-by-the-api', config: { metadata: { team: 'blue' } } });
  assert.is(s.status, 201, s.text);
  sessionId = s.body.data.id;
  const row = page.locator(`tr.session-row[data-id="${sessionId}"]`);
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.innerText(), /made-by-the-api/);
  assert.is(await row.getAttribute('data-status'), 'active');

  await row.locator('a').first().click();
  await page.waitForSelector('[data-testid=session-status]:has-text("active")');
  const d = await c.post<{ id: string }>('/v1/departments', { sessionId, name: 'eng', domain: 'code-generation' });
  assert.is(d.status, 201, d.text);
  const paused = await call(c.api.url, 'PUT', `/v1/sessions/${sessionId}`, { token: c.api.adminToken, body: { status: 'paused' } });
  assert.is(paused.status, 200, paused.text);
  await page.waitForSelector('[data-testid=session-status]:has-text("paused")', { timeout: 10_000 });
  await page.waitForSelector(`#session-departments tr.department-row[data-id="${d.body.data.id}"]`, { timeout: 10_000 });
  assert.match(await page.locator('#session pre.json').innerText(), /"team": "blue"/);
  assert.ok(await marked(), 'the page reloaded');
  const resumed = await call(c.api.url, 'PUT', `/v1/sessions/${sessionId}`, { token: c.api.adminToken, body: { status: 'active' } });
  assert.is(resumed.status, 200, resumed.text);
});

it('a workflow started through the API shows its progress live and ends completed without a reload', async () => {
  const { page } = browser;
  const sb = await c.post<{ id: string }>('/v1/sandboxes', { sessionId, image: BUSYBOX, name: 'wf-box' });
  assert.is(sb.status, 201, sb.text);
  const wf = await c.post<{ id: string }>('/v1/workflows', {
    sessionId,
    name: 'console-run',
    sandboxId: sb.body.data.id,
    steps: [
      { type: 'execute', command: 'echo step-one' },
      { type: 'execute', command: 'sleep 2; echo step-two-output' },
      { type: 'verify', criteria: 'output contains "step-two-output"' },
    ],
  });
  assert.is(wf.status, 201, wf.text);
  const id = wf.body.data.id;

  await page.goto(`${c.api.url}/console#/workflows?session=${sessionId}`);
  await page.click(`tr.workflow-row[data-id="${id}"] a[href="#/workflows/${id}"]`);
  await page.waitForSelector('#run .empty:has-text("Never started")');
  await mark();
  const started = await c.post(`/v1/workflows/${id}/start`);
  assert.is(started.status, 202, started.text);
  // Part way: the first step done while the run still runs (the second sleeps 2 s).
  await allAtOnce(['[data-testid=run-status][data-status=running]', 'tr.step-row[data-step="1"][data-status=completed]']);
  const midway = Number(await page.locator('[data-testid=run-progress]').getAttribute('data-value'));
  assert.ok(midway > 0 && midway < 100, `progress part way: ${midway}`);
  await page.waitForSelector('[data-testid=run-status][data-status=completed]', { timeout: 20_000 });
  assert.is(await page.locator('[data-testid=run-progress]').getAttribute('data-value'), '100');
  const second = page.locator('tr.step-row[data-step="2"]');
  assert.is(await second.getAttribute('data-status'), 'completed');
  assert.is(await second.locator('.attempt-exit').innerText(), '0');
  assert.match(await second.locator('.attempt-stdout').innerText(), /step-two-output/);
  assert.match(await page.locator('tr.step-row[data-step="3"]').innerText(), /held/);
  assert.not.ok(await page.locator('[data-testid=cancel-run]').isVisible(), 'cancel offered for an ended run');
  assert.ok(await marked(), 'the page reloaded');
});

it('a tool call waiting for approval appears in the queue, and Approve lets it run', async () => {
  const { page } = browser;
  const { sessionId: chatSession, agentId } = await c.agent();
  await page.click('nav a:has-text("Approvals")');
  await page.waitForSelector('#approvals [data-testid=approvals-live]:has-text("live")');
  await page.waitForSelector('#approvals .empty');
  await mark();
  c.llm.script([{ toolCalls: [{ name: 'execute', input: { command: 'echo approved-in-the-console' } }] }, { text: 'ran it' }]);
  const turn: Promise<SseResult> = c.chatSse({ agent: agentId, message: 'please run it' });
  const row = page.locator(`tr.approval-row[data-status=pending]:has-text("${agentId}")`);
  await row.waitFor({ timeout: 15_000 });
  assert.match(await row.innerText(), /execute/);
  assert.match(await row.innerText(), /echo approved-in-the-console/);
  assert.match(await row.innerText(), new RegExp(chatSession));
  const approvalId = (await row.getAttribute('data-id')) ?? '';
  await row.locator('[data-testid=approve]').click();
  const result = await turn;
  const end = result.events.find((e) => e.event === 'tool_end');
  assert.is(end?.data.status, 'ok', JSON.stringify(result.events.map((e) => e.event)));
  const rec = await c.get<{ status: string; decidedBy: string }>(`/v1/approvals/${approvalId}`);
  assert.is(rec.status, 200, rec.text);
  assert.is(rec.body.data.status, 'approved');
  // Gone from the pending queue without a reload.
  await page.locator(`tr.approval-row[data-id="${approvalId}"]`).waitFor({ state: 'detached', timeout: 10_000 });
  assert.ok(await marked(), 'the page reloaded');
});

test.run();
