/**
 * The static console route (api/routes/console.ts) on a bare Fastify instance: the page gets a
 * fresh CSP nonce per response, assets are served only by plain names from the build's folder,
 * and an unbuilt console answers 503 saying how to build it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { consoleRoutes } from '../../../api/routes/console.ts';

const test = suite('console route');
let dir = '';
let app: FastifyInstance;

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'director-console-'));
  mkdirSync(path.join(dir, 'dist', 'assets'), { recursive: true });
  writeFileSync(
    path.join(dir, 'dist', 'index.html'),
    '<!doctype html><link rel="stylesheet" href="/console/assets/app-A.css"><script type="module" src="/console/assets/app-A.js" nonce="%NONCE%"></script>',
  );
  writeFileSync(path.join(dir, 'dist', 'assets', 'app-A.js'), 'console.log(1);\n');
  writeFileSync(path.join(dir, 'dist', 'assets', 'app-A.css'), 'body{}\n');
  writeFileSync(path.join(dir, 'dist', 'build.json'), '{"hash":"x"}\n');
  writeFileSync(path.join(dir, 'secret.txt'), 'outside the assets folder\n');
  app = Fastify({ routerOptions: { ignoreTrailingSlash: true } });
  await app.register(consoleRoutes, { dir: path.join(dir, 'dist') });
});
test.after(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

const nonceOf = (csp: string) => /'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];

test('the page carries a strict CSP whose style nonce is fresh per response and matches the page', async () => {
  const a = await app.inject({ method: 'GET', url: '/console' });
  const b = await app.inject({ method: 'GET', url: '/console/' });
  assert.is(a.statusCode, 200);
  assert.is(b.statusCode, 200);
  const csp = String(a.headers['content-security-policy']);
  for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) {
    assert.ok(csp.includes(directive), `missing ${directive} in ${csp}`);
  }
  assert.not.ok(/unsafe-inline|unsafe-eval|https?:/.test(csp), csp);
  const n1 = nonceOf(csp);
  const n2 = nonceOf(String(b.headers['content-security-policy']));
  assert.ok(n1 && n2 && n1 !== n2, 'a nonce must never repeat');
  assert.ok(a.body.includes(`nonce="${n1}"`), 'the page names the nonce of its own response');
  assert.not.ok(a.body.includes('%NONCE%'));
  assert.is(a.headers['cache-control'], 'no-store');
  assert.is(a.headers['x-frame-options'], 'DENY');
  assert.is(a.headers['referrer-policy'], 'no-referrer');
  assert.is(a.headers['x-content-type-options'], 'nosniff');
  assert.match(String(a.headers['content-type']), /^text\/html/);
});

test('assets are served with their type and cached for good; nothing outside assets/ is reachable', async () => {
  const js = await app.inject({ method: 'GET', url: '/console/assets/app-A.js' });
  assert.is(js.statusCode, 200);
  assert.is(js.body, 'console.log(1);\n');
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.match(String(js.headers['cache-control']), /immutable/);
  assert.ok(String(js.headers['content-security-policy']).startsWith("default-src 'none'"));
  const css = await app.inject({ method: 'GET', url: '/console/assets/app-A.css' });
  assert.match(String(css.headers['content-type']), /^text\/css/);
  for (const url of [
    '/console/assets/..%2Fbuild.json',
    '/console/assets/..%2F..%2Fsecret.txt',
    '/console/assets/.hidden.js',
    '/console/assets/missing.js',
    '/console/assets/app-A.json',
  ]) {
    const res = await app.inject({ method: 'GET', url });
    assert.is(res.statusCode, 404, `${url} answered ${res.statusCode}`);
    assert.not.ok(res.body.includes('outside the assets folder'));
  }
});

test('a console that was never built answers 503 naming the build command', async () => {
  const bare = Fastify();
  await bare.register(consoleRoutes, { dir: path.join(dir, 'missing') });
  const res = await bare.inject({ method: 'GET', url: '/console' });
  assert.is(res.statusCode, 503);
  const body = JSON.parse(res.body) as { error: { code: string; message: string } };
  assert.is(body.error.code, 'SERVICE_UNAVAILABLE');
  assert.match(body.error.message, /build-console/);
  assert.ok(res.headers['content-security-policy']);
  await bare.close();
});

test.run();
