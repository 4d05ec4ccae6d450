/**
 * One network's DNS endpoint: a UDP socket and a TCP server (2-byte length framing) on the same
 * address and port, handing each query to the resolver and writing back what it returns.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import { unavailable, validationError } from '../../../core/errors.ts';

export interface ClientInfo {
  address: string;
  port: number;
  transport: 'udp' | 'tcp';
}

/** Returns the reply to send, or null to send nothing. Must not reject. */
export type QueryHandler = (packet: Buffer, client: ClientInfo) => Promise<Buffer | null>;

export interface DnsListener {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Idle TCP connections are closed after this long. */
export const TCP_IDLE_TIMEOUT_MS = 10_000;
/** Concurrent TCP connections per listener. */
export const MAX_TCP_CONNECTIONS = 64;
/** Queries in flight on one TCP connection before it is closed. */
export const MAX_TCP_INFLIGHT = 16;
const EPHEMERAL_BIND_ATTEMPTS = 10;

function bindError(err: NodeJS.ErrnoException, address: string, port: number, transport: string): Error {
  const where = `DNS listener on ${address} port ${port} (${transport})`;
  const why: Record<string, string> = {
    EADDRNOTAVAIL: `${address} is not an address of this host`,
    EADDRINUSE: 'the port is already in use',
    EACCES: 'permission denied (ports below 1024 need privileges)',
  };
  return unavailable(`${where}: ${why[err.code ?? ''] ?? err.message}`, err);
}

function bindUdp(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4' });
    socket.once('error', (err) => {
      try {
        socket.close();
      } catch {
        /* already closed by the failed bind */
      }
      reject(err);
    });
    socket.bind({ address, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function listenTcp(server: net.Server, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function serveTcpConnection(socket: net.Socket, handler: QueryHandler, log: Logger): void {
  let buffered = Buffer.alloc(0);
  let inflight = 0;
  let ended = false;
  const client = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, transport: 'tcp' as const };
  const maybeEnd = () => {
    if (ended && inflight === 0 && !socket.destroyed) socket.end();
  };
  socket.setTimeout(TCP_IDLE_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', (err) => log.debug({ err }, 'dns tcp client connection error'));
  socket.on('end', () => {
    ended = true;
    maybeEnd();
  });
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const packet = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
      buffered = buffered.subarray(2 + packet.length);
      if (++inflight > MAX_TCP_INFLIGHT) {
        socket.destroy();
        return;
      }
      void handler(packet, client).then((reply) => {
        inflight--;
        if (reply && !socket.destroyed) {
          const length = Buffer.alloc(2);
          length.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([length, reply]));
        }
        maybeEnd();
      });
    }
  });
}

/** Null when port 0 was asked for and the UDP port's TCP twin is taken: try another. */
async function openOnce(address: string, port: number, handler: QueryHandler, log: Logger): Promise<DnsListener | null> {
  let udp: dgram.Socket;
  try {
    udp = await bindUdp(address, port);
  } catch (err) {
    throw bindError(err as NodeJS.ErrnoException, address, port, 'UDP');
  }
  const boundPort = udp.address().port;
  const connections = new Set<net.Socket>();
  const tcp = net.createServer({ allowHalfOpen: true }, (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveTcpConnection(socket, handler, log);
  });
  tcp.maxConnections = MAX_TCP_CONNECTIONS;
  try {
    await listenTcp(tcp, address, boundPort);
  } catch (err) {
    udp.close();
    if (port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') return null;
    throw bindError(err as NodeJS.ErrnoException, address, boundPort, 'TCP');
  }
  let closed = false;
  udp.on('error', (err) => log.warn({ err }, 'dns udp socket error'));
  udp.on('message', (packet, rinfo) => {
    void handler(packet, { address: rinfo.address, port: rinfo.port, transport: 'udp' }).then((reply) => {
      if (!reply || closed) return;
      udp.send(reply, rinfo.port, rinfo.address, (err) => {
        if (err) log.debug({ err }, 'dns udp reply not sent');
      });
    });
  });
  return {
    address,
    port: boundPort,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const s of connections) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

/**
 * Opens UDP and TCP on `address`:`port`. Port 0 picks a free port for both (retrying when the
 * UDP port's TCP twin is taken). Throws a SERVICE_UNAVAILABLE DirectorError naming the address
 * when it is not local or the port is taken.
 */
export async function openListener(address: string, port: number, handler: QueryHandler, log: Logger): Promise<DnsListener> {
  if (net.isIP(address) === 0) throw validationError('address', `"${address}" is not an IP address`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw validationError('port', `${port} is not a port number (0-65535)`);
  for (let attempt = 0; attempt < EPHEMERAL_BIND_ATTEMPTS; attempt++) {
    const listener = await openOnce(address, port, handler, log);
    if (listener) return listener;
  }
  throw unavailable(`DNS listener on ${address}: no free port for both UDP and TCP after ${EPHEMERAL_BIND_ATTEMPTS} attempts`);
}
