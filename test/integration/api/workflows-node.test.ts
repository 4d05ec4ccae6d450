/**
 * The Director Protocol's own workflow example over real HTTP: a Node project whose `npm test`
 * passes, in a `director/node` sandbox of the session, with the seed's exact steps and start
 * body. It completes and takes its checkpoint; a broken project fails its verify and is rolled
 * back to that checkpoint on retry. Needs the image `director/node:latest`
 * (images/node, built by scripts/provision.sh); without it this file reports one skipped test.
 */
import { execFileSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startApi, type TestApi } from '../../helpers/api.ts';
import { WorkflowClient } from '../../helpers/workflows.ts';

const NODE_IMAGE = 'director/node:latest';
const test = suite('api-workflows-node');
let api: TestApi;
let c: WorkflowClient;

const hasImage = (() => {
  try {
    execFileSync('docker', ['image', 'inspect', NODE_IMAGE], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const PACKAGE = JSON.stringify({ name: 'sum', version: '1.0.0', private: true, scripts: { test: 'node --test' } });
const SUM = 'module.exports = (a, b) => a + b;\n';
const TEST = `const test = require('node:test');
const assert = require('node:assert');
const sum = require('../sum.js');
test('adds', () => assert.strictEqual(sum(2, 3), 5));
test('adds negatives', () => assert.strictEqual(sum(-2, -3), -5));
`;

test.before(async () => {
  if (!hasImage) return;
  api = await startApi({ rateLimitSandbox: 10_000, rateLimitSession: 10_000 });
  c = new WorkflowClient(api.url, api.adminToken);
});
test.after(async () => {
  await api?.close();
});

const SEED = "the seed's example: npm test passes, the verify holds, the checkpoint is taken";
async function seedExample(): Promise<void> {
  const ses = await c.session({ type: 'director', name: 'Development Session' });
  const sbx = await c.sandbox(ses, { image: NODE_IMAGE, workdir: '/workspace', resourceLimits: { memory: 512 } });
  await c.exec(sbx, 'mkdir -p /workspace/test');
  await c.write(sbx, '/workspace/package.json', PACKAGE);
  await c.write(sbx, '/workspace/sum.js', SUM);
  await c.write(sbx, '/workspace/test/sum.test.js', TEST);
  const id = await c.create({
    sessionId: ses,
    name: 'Code Review Workflow',
    description: 'Automated code review process',
    sandboxId: sbx,
    steps: [
      { type: 'execute', command: 'npm test', timeout: 300000 },
      { type: 'verify', criteria: 'tests pass', timeout: 60000 },
      { type: 'checkpoint', name: 'code-review-checkpoint', description: 'Checkpoint after code review' },
    ],
    config: { timeout: 1800000, maxRetries: 3 },
  });
  await c.start(id, { environment: { NODE_ENV: 'production' }, context: { reviewer: 'ai-assistant' } });
  const s = await c.until(id, undefined, 300_000);
  assert.is(s.status, 'completed', JSON.stringify(s.run?.reason ?? s.run?.steps[0]?.attempts));
  const npm = s.run!.steps[0]!.attempts[0]!;
  assert.is(npm.exitCode, 0);
  assert.match(npm.stdout, /# pass 2/);
  assert.match(s.run!.checkpoint?.id ?? '', /^ckp_/);
  assert.is(s.run!.steps[2]!.attempts[0]!.checkpointId, s.run!.checkpoint!.id);
  assert.equal(s.run!.context, { reviewer: 'ai-assistant' });
  assert.equal(s.run!.environmentKeys, ['NODE_ENV']);

  // A change that breaks the tests: the verify fails, the retry restores the checkpoint taken first, and passes.
  const fix = await c.create({
    sessionId: ses,
    name: 'Fix attempt',
    sandboxId: sbx,
    steps: [
      { type: 'checkpoint', name: 'before-change' },
      {
        type: 'execute',
        command: 'test -e /tmp/broke || { touch /tmp/broke; echo "module.exports = (a, b) => a - b;" > sum.js; }; npm test',
      },
      { type: 'verify', criteria: 'tests pass' },
    ],
    config: { maxRetries: 1, backoff: { initialInterval: 50 } },
  });
  await c.start(fix);
  const f = await c.until(fix, undefined, 300_000);
  assert.is(f.status, 'completed', JSON.stringify(f.run?.reason));
  assert.equal(
    f.run!.steps[1]!.attempts.map((a) => a.exitCode === 0),
    [false, true],
  );
  assert.is((await c.exec(sbx, 'cat /workspace/sum.js')).stdout, SUM, 'the broken file was rolled back');
}

if (hasImage) test(SEED, seedExample);
else test.skip(SEED, seedExample);

if (!hasImage) console.log(`# ${NODE_IMAGE} is not on this engine: the seed's Node example was skipped`);
test.run();
