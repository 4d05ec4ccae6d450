/**
 * Loopback-only helpers for the resolver tests: a fake upstream DNS server on 127.0.0.1 that
 * answers `.test` names from a table and records every query, and UDP/TCP clients.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import {
  decode,
  encode,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
  type Answer,
  type DecodedPacket,
  type Packet,
  type RecordType,
} from 'dns-packet';

export const LOOPBACK = '127.0.0.1';

export interface Recorded {
  transport: 'udp' | 'tcp';
  name: string;
  type: string;
}

export interface UpstreamEntry {
  answers: Answer[];
  /** Never reply. */
  silent?: boolean;
  /** Over UDP reply with TC set and no answers (forces the TCP retry). */
  truncateUdp?: boolean;
}

export interface FakeUpstream {
  port: number;
  queries: Recorded[];
  close(): Promise<void>;
}

function reply(query: DecodedPacket, table: Map<string, UpstreamEntry>, transport: 'udp' | 'tcp'): Buffer | null {
  const q = query.questions?.[0];
  if (!q) return null;
  const entry = table.get(q.name.toLowerCase());
  if (entry?.silent) return null;
  const base: Packet = { type: 'response', id: query.id ?? 0, flags: RECURSION_DESIRED, questions: query.questions ?? [] };
  if (!entry) return encode({ ...base, flags: RECURSION_DESIRED | 3 });
  if (entry.truncateUdp && transport === 'udp') return encode({ ...base, flags: RECURSION_DESIRED | TRUNCATED_RESPONSE });
  const wanted = entry.answers.filter((a) => a.type === q.type || a.type === 'CNAME');
  return encode({ ...base, answers: wanted });
}

/** Starts the fake upstream on UDP and TCP 127.0.0.1:<same ephemeral port>. */
export async function startFakeUpstream(table: Map<string, UpstreamEntry>): Promise<FakeUpstream> {
  const queries: Recorded[] = [];
  const record = (packet: DecodedPacket, transport: 'udp' | 'tcp') => {
    const q = packet.questions?.[0];
    queries.push({ transport, name: q?.name ?? '', type: q?.type ?? '' });
  };
  for (;;) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, LOOPBACK, resolve));
    const port = udp.address().port;
    udp.on('message', (msg, rinfo) => {
      const packet = decode(msg);
      record(packet, 'udp');
      const out = reply(packet, table, 'udp');
      if (out) udp.send(out, rinfo.port, rinfo.address);
    });
    const sockets = new Set<net.Socket>();
    const tcp = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      let buf = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const packet = decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          record(packet, 'tcp');
          const out = reply(packet, table, 'tcp');
          if (out) socket.write(frame(out));
        }
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, LOOPBACK, () => resolve(true));
    });
    if (!ok) {
      udp.close();
      continue;
    }
    return {
      port,
      queries,
      close: async () => {
        for (const s of sockets) s.destroy();
        await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
      },
    };
  }
}

export const frame = (packet: Buffer): Buffer => {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(packet.length);
  return Buffer.concat([length, packet]);
};

let nextId = 1;
/** A recursive query for `name`/`type` (no EDNS unless `udpPayloadSize` is given). */
export function query(name: string, type: string, opts: { id?: number; udpPayloadSize?: number } = {}): Buffer {
  return encode({
    type: 'query',
    id: opts.id ?? nextId++,
    flags: RECURSION_DESIRED,
    questions: [{ name, type: type as RecordType }],
    additionals: opts.udpPayloadSize
      ? [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: opts.udpPayloadSize,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [],
  });
}

/** Sends one UDP datagram to 127.0.0.1:`port`; resolves with the reply, or null after `waitMs`. */
export function udpExchange(port: number, packet: Buffer, waitMs = 3000): Promise<DecodedPacket | null> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, waitMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(decode(msg));
    });
    socket.send(packet, port, LOOPBACK);
  });
}

/** Sends framed queries over one TCP connection to 127.0.0.1:`port`; resolves with the replies. */
export function tcpExchange(port: number, packets: Buffer[], waitMs = 3000): Promise<DecodedPacket[]> {
  return new Promise((resolve, reject) => {
    const replies: DecodedPacket[] = [];
    const socket = net.createConnection({ host: LOOPBACK, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(replies);
    }, waitMs);
    let buf = Buffer.alloc(0);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => socket.write(Buffer.concat(packets.map(frame))));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (replies.length === packets.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve(replies);
      }
    });
  });
}

export const addressesOf = (p: DecodedPacket | null | undefined): string[] =>
  (p?.answers ?? []).flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : []));
