import { request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Fastify from 'fastify';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serveEventStream } from '../../../api/event-stream.ts';

test('each frame is handed to the connection as it is written, not at the next tick', async () => {
  const app = Fastify();
  let socket: Socket | null = null;
  /** Bytes still held in the server's socket (not yet handed to the kernel) when the source was resumed after each frame. */
  const heldAfter: number[] = [];
  app.get('/s', (_req, reply) =>
    serveEventStream(
      reply,
      async function* () {
        socket = reply.raw.socket;
        for (let i = 1; i <= 2; i++) {
          yield i;
          // Resumed in the same tick as the write: a frame still corked has not reached the socket.
          heldAfter.push(socket!.writableLength);
        }
      },
      { heartbeatMs: 60_000, frame: (n: number) => `id: ${n}\ndata: {}\n\n`, errorData: () => ({}), endEvent: false },
    ),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const port = (app.server.address() as AddressInfo).port;
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/s' }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (s += d));
        res.on('end', () => resolve(s));
      })
        .on('error', reject)
        .end();
    });
    assert.ok(body.includes('id: 1\n') && body.includes('id: 2\n'), body);
    assert.equal(heldAfter, [0, 0], 'each frame was on the wire before the source went on');
  } finally {
    await app.close();
  }
});

test.run();
