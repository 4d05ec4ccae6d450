import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closedPolicy, parseCidrList, TargetRefusedError, type LookupAll, type TargetPolicy } from '../../../runtime/webhooks/guard.ts';
import { httpTransport } from '../../../runtime/webhooks/transport.ts';

interface Seen {
  url: string;
  host: string;
  body: string;
}
let server: Server;
let port = 0;
const seen: Seen[] = [];

test.before(async () => {
  server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', host: req.headers.host ?? '', body });
      if (req.url === '/redirect') {
        res.writeHead(302, { location: `http://127.0.0.1:${port}/landed` }).end();
      } else {
        res.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
test.after(async () => {
  await new Promise((r) => server.close(r));
});
test.before.each(() => {
  seen.length = 0;
});

const loopbackOpen: TargetPolicy = { allowPrivateTargets: false, allowedTargetCidrs: parseCidrList('127.0.0.0/8', 'X') };
/** A resolver whose answers the test controls: every name resolves to 127.0.0.1. */
const toLoopback: LookupAll = async () => [{ address: '127.0.0.1', family: 4 }];
const post = (policy: TargetPolicy, url: string, lookup: LookupAll = toLoopback) =>
  httpTransport(
    policy,
    lookup,
  )({ url, body: '{"event":"x"}', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(2000) });

async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, TargetRefusedError);
    return (err as Error).message;
  }
  assert.unreachable('the request was sent');
  return '';
}

test('an opened loopback target receives the body', async () => {
  const res = await post(loopbackOpen, `http://127.0.0.1:${port}/hook`);
  assert.is(res.statusCode, 204);
  assert.equal(seen, [{ url: '/hook', host: `127.0.0.1:${port}`, body: '{"event":"x"}' }]);
});

test('a forbidden IP literal is refused before any connection', async () => {
  assert.match(await refused(post(closedPolicy, `http://127.0.0.1:${port}/hook`)), /loopback/);
  assert.is(seen.length, 0);
});

test('names are checked on the addresses actually connected to (DNS rebinding)', async () => {
  // The name resolved to a public address when the webhook was created; now it answers 127.0.0.1.
  assert.match(
    await refused(post(closedPolicy, `http://rebind.test:${port}/hook`)),
    /rebind\.test resolves to a forbidden address: 127\.0\.0\.1 is a loopback/,
  );
  assert.is(seen.length, 0);
  // With loopback opened, the same answer is used for the connection itself.
  const res = await post(loopbackOpen, `http://rebind.test:${port}/hook`);
  assert.is(res.statusCode, 204);
  assert.is(seen[0]?.host, `rebind.test:${port}`);
});

test('one forbidden answer among several refuses the name', async () => {
  const mixed: LookupAll = async () => [
    { address: '127.0.0.1', family: 4 },
    { address: '169.254.169.254', family: 4 },
  ];
  assert.match(await refused(post(loopbackOpen, `http://mixed.test:${port}/hook`, mixed)), /metadata/);
  assert.is(seen.length, 0);
});

test('redirects are not followed', async () => {
  const res = await post(loopbackOpen, `http://127.0.0.1:${port}/redirect`);
  assert.is(res.statusCode, 302);
  assert.equal(
    seen.map((s) => s.url),
    ['/redirect'],
  );
});

test('a refused connection rejects with its code', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  try {
    await post(loopbackOpen, `http://127.0.0.1:${deadPort}/`);
    assert.unreachable('connected');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  }
});

test.run();
