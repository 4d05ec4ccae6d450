import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createProviderFetch } from '../../../orchestration/chat/http-fetch.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function serve(handler: Handler) {
  const ports: number[] = [];
  const server = createServer((req, res) => {
    ports.push(req.socket.remotePort!);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    ports,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('posts the body and headers, and streams the answer as it arrives', async () => {
  let more: () => void = () => undefined;
  const s = await serve((req, res, body) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-seen': `${String(req.headers['x-api-key'])}|${body}` });
    res.write('data: one\n\n');
    more = () => res.end('data: two\n\n');
  });
  const f = createProviderFetch();
  try {
    const r = await f.fetch(`${s.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'k1' }, body: '{"a":1}' });
    assert.is(r.status, 200);
    assert.is(r.headers.get('x-seen'), 'k1|{"a":1}');
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    // The first chunk is readable while the server still holds the rest back.
    assert.is(new TextDecoder().decode(first.value), 'data: one\n\n');
    more();
    let rest = '';
    for (let c = await reader.read(); !c.done; c = await reader.read()) rest += new TextDecoder().decode(c.value);
    assert.is(rest, 'data: two\n\n');
  } finally {
    f.close();
    await s.close();
  }
});

test('keeps the connection for the next request', async () => {
  const s = await serve((_req, res) => res.end('ok'));
  const f = createProviderFetch();
  try {
    for (let i = 0; i < 3; i++) assert.is(await (await f.fetch(`${s.url}/x`, { method: 'POST', body: 'b' })).text(), 'ok');
    assert.is(new Set(s.ports).size, 1, `one connection for three requests: ${s.ports.join(',')}`);
  } finally {
    f.close();
    await s.close();
  }
});

test('an HTTP error answers with its status and body; a redirect is not followed', async () => {
  const seen: string[] = [];
  const s = await serve((req, res) => {
    seen.push(req.url!);
    if (req.url === '/moved') {
      res.writeHead(307, { location: '/elsewhere' });
      res.end();
    } else {
      res.writeHead(429, { 'content-type': 'application/json' });
      res.end('{"error":"slow down"}');
    }
  });
  const f = createProviderFetch();
  try {
    const r = await f.fetch(`${s.url}/limited`, { method: 'POST', body: '{}' });
    assert.is(r.status, 429);
    assert.is(r.ok, false);
    assert.equal(await r.json(), { error: 'slow down' });
    const m = await f.fetch(`${s.url}/moved`, { method: 'POST', body: '{}' });
    assert.is(m.status, 307);
    assert.equal(seen, ['/limited', '/moved'], 'the redirect target was never asked');
  } finally {
    f.close();
    await s.close();
  }
});

test('a gzip-encoded body is decoded', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-encoding': 'gzip' });
    res.end(gzipSync('{"text":"hello"}'));
  });
  const f = createProviderFetch();
  try {
    assert.equal(await (await f.fetch(`${s.url}/x`, { method: 'POST', body: '{}' })).json(), { text: 'hello' });
  } finally {
    f.close();
    await s.close();
  }
});

test('no server: rejects as the global fetch does (TypeError "fetch failed" with the cause)', async () => {
  const s = await serve(() => undefined);
  const url = s.url;
  await s.close();
  const f = createProviderFetch();
  try {
    const err = await f.fetch(`${url}/x`, { method: 'POST', body: '{}' }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(err, TypeError);
    assert.is((err as TypeError).message, 'fetch failed');
    assert.is(((err as TypeError).cause as { code?: string }).code, 'ECONNREFUSED');
  } finally {
    f.close();
  }
});

test("an abort before the answer rejects with the signal's reason; during the body it errors the body", async () => {
  let answer: (() => void) | null = null;
  const s = await serve((req, res) => {
    if (req.url === '/hang') return;
    res.writeHead(200);
    res.write('part');
    answer = () => res.end('rest');
  });
  const f = createProviderFetch();
  try {
    const ac = new AbortController();
    const p = f.fetch(`${s.url}/hang`, { method: 'POST', body: '{}', signal: ac.signal });
    ac.abort(new Error('the turn was cancelled'));
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    assert.is((err as Error).message, 'the turn was cancelled');

    const ac2 = new AbortController();
    const r = await f.fetch(`${s.url}/body`, { method: 'POST', body: '{}', signal: ac2.signal });
    const reader = r.body!.getReader();
    await reader.read();
    ac2.abort(new Error('provider timeout'));
    const bodyErr = await reader.read().then(
      () => null,
      (e: unknown) => e,
    );
    assert.is((bodyErr as Error | null)?.message, 'provider timeout');
    assert.ok(answer, 'the server had answered the second request');
  } finally {
    f.close();
    await s.close();
  }
});

test.run();
