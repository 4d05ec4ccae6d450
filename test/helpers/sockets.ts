/** Test helpers around the server's sockets: dropping WebSocket connections, finding a closed port. */
import type { IncomingMessage } from 'node:http';
import { createServer, type Socket } from 'node:net';
import type { TestApi } from './api.ts';

/**
 * The hub's WebSocket connections as the server sees them, so a test can drop them the way a
 * network failure would (the socket destroyed, no close frame).
 */
export class HubSockets {
  readonly #open = new Set<Socket>();
  /** Upgrades to /v1/ws so far. */
  connections = 0;

  constructor(api: TestApi) {
    api.app.server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      if (!req.url?.startsWith('/v1/ws')) return;
      this.connections++;
      this.#open.add(socket);
      socket.once('close', () => this.#open.delete(socket));
    });
  }

  get open(): number {
    return this.#open.size;
  }

  dropAll(): void {
    for (const s of this.#open) s.destroy();
  }
}

/** A loopback port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
