/**
 * A "fake internet" for integration tests: a network namespace holding TEST-NET hosts (web
 * servers, an upstream DNS server for `.test` names and a fake "public resolver"), reached from the
 * host, and from Docker bridge networks through normal forwarding, over a veth pair and /32 host
 * routes. Nothing here ever sends traffic anywhere else: every sending helper first proves with
 * `assertRoute` that the kernel routes the destination into this fixture's veth.
 *
 *   host ── dfi<id>h 100.127.X.Y+1/30 ══ veth ══ dfi<id>n 100.127.X.Y+2/30 ── netns dfi-<id>
 *           routes 203.0.113.10/32 ... via .Y+2                              lo: 203.0.113.10, 203.0.113.20,
 *                                                                              198.51.100.53, 198.51.100.88,
 *                                                                              2001:db8:1::10 (if IPv6 works)
 *
 * Usage:
 *   await using fi = await startFakeInternet();
 *   await fi.setDns('api.example.test', ['203.0.113.10'], 30);
 *   ... point a sandbox at fi.upstreamDns, connect to 203.0.113.10:8080 ...
 *   await fi.waitFor((o) => o.kind === 'tcp' && o.port === 8080);
 *
 * `close()` (also `[Symbol.asyncDispose]`) removes the server process, routes, veth and namespace
 * and restores ip_forward. It is idempotent, and a synchronous best-effort version runs on process
 * exit and on SIGINT/SIGTERM. Leftovers of a process that was SIGKILLed are swept by the next
 * `startFakeInternet` (`sweepStaleFakeInternets`): the host veth's alias records the owner pid.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, isIPv6, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import type { FakeHostServerConfig } from '../fixtures/fake-host-server.ts';

const execFileP = promisify(execFile);
const SERVER = fileURLToPath(new URL('../fixtures/fake-host-server.ts', import.meta.url));
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
const IPV6_DISABLED = '/proc/sys/net/ipv6/conf/all/disable_ipv6';
const ALIAS_PREFIX = 'director-fake-internet owner=';
const HOST_IF = /^dfi([0-9a-f]{6})h$/;

export interface FakeInternetOptions {
  /** IPv4 web hosts (TCP + UDP listeners). Default 203.0.113.10 and 203.0.113.20. */
  webHosts?: string[];
  /** IPv6 web hosts, set up only when IPv6 works on the host. Default 2001:db8:1::10. */
  webHosts6?: string[];
  /** TCP ports on every web host. Default 80, 443, 8080, 5000. */
  tcpPorts?: number[];
  /** UDP ports on every web host. Default 5353, 9999. */
  udpPorts?: number[];
  /** DNS server (udp+tcp 53) for `.test` names, playing the upstream resolver. Default 198.51.100.53. */
  upstreamDns?: string;
  /** A second DNS server playing a public resolver ("8.8.8.8"), same table; null for none. Default 198.51.100.88. */
  publicResolver?: string | null;
  /** Try IPv6 at all (default true); failure to set it up is tolerated either way (see `ipv6`). */
  ipv6?: boolean;
  /** Initial DNS table: name -> addresses (A and AAAA by family), ttl 30. */
  dns?: Record<string, string[]>;
  /** How long the servers may take to bind. Default 15 s. */
  readyTimeoutMs?: number;
}

interface Stamp {
  at: number;
}
export type TcpOpenObservation = Stamp & { kind: 'tcp-open'; host: string; port: number; from: string; fromPort: number };
export type TcpObservation = Stamp & {
  kind: 'tcp';
  host: string;
  port: number;
  from: string;
  fromPort: number;
  bytes: number;
  data: string;
};
export type UdpObservation = Stamp & {
  kind: 'udp';
  host: string;
  port: number;
  from: string;
  fromPort: number;
  bytes: number;
  data: string;
};
export type DnsObservation = Stamp & { kind: 'dns'; server: string; from: string; name: string; qtype: string; transport: 'udp' | 'tcp' };
export type Observation = TcpOpenObservation | TcpObservation | UdpObservation | DnsObservation;
export type ObservationFilter = ((o: Observation) => boolean) | Partial<Record<string, unknown>>;

export interface FakeInternet extends AsyncDisposable {
  /** Namespace name (`dfi-<id>`), host-side and namespace-side veth names. */
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  /** The /30 link addresses: host side (also what Docker masquerades containers to) and namespace side. */
  readonly hostAddr: string;
  readonly nsAddr: string;
  /** Whether the IPv6 hosts are up (false when IPv6 is disabled or failed to set up). */
  readonly ipv6: boolean;
  readonly webHosts: readonly string[];
  /** Empty when `ipv6` is false. */
  readonly webHosts6: readonly string[];
  readonly tcpPorts: readonly number[];
  readonly udpPorts: readonly number[];
  readonly upstreamDns: string;
  readonly publicResolver: string | null;
  /** Every TEST-NET address this fixture routes (web hosts, DNS servers, IPv6 hosts). */
  readonly addresses: readonly string[];
  /** Everything the servers saw, oldest first (cleared by `clear()`). */
  readonly observations: Observation[];

  /** Throws unless `ip route get <addr>` leaves through this fixture's host-side veth. */
  assertRoute(addr: string): Promise<void>;
  /** Sets (replaces) the A/AAAA records of `name`; resolves once the servers applied it. */
  setDns(name: string, addrs: string[], ttl?: number): Promise<void>;
  /** Removes `name`: queries get NXDOMAIN again. */
  deleteDns(name: string): Promise<void>;
  /** The first observation (past or future) matching `filter`; rejects after `timeoutMs` (default 5000). */
  waitFor<T extends Observation = Observation>(filter: ObservationFilter, timeoutMs?: number): Promise<T>;
  /** Observations so far matching `filter` (an object matches on equal fields; a function is a predicate). */
  received<T extends Observation = Observation>(filter?: ObservationFilter): T[];
  clear(): void;

  /** From the host: connects, sends `payload`, reads one `ok` line per sent line, closes. Returns what came back. */
  tcpExchange(host: string, port: number, payload?: string, timeoutMs?: number): Promise<string>;
  /** From the host: sends one datagram and returns the reply. */
  udpExchange(host: string, port: number, payload?: string, timeoutMs?: number): Promise<string>;
  /** From the host: one DNS query (udp or tcp) to `server`, returns the decoded response. */
  dnsQuery(
    server: string,
    name: string,
    qtype?: 'A' | 'AAAA',
    transport?: 'udp' | 'tcp',
    timeoutMs?: number,
  ): Promise<dnsPacket.DecodedPacket & { rcode: string }>;

  close(): Promise<void>;
}

// ---------------------------------------------------------------- process-wide bookkeeping

/** Teardown of every fixture still open in this process, run synchronously on exit or a signal. */
const live = new Map<string, () => void>();
let forwardSaved: string | null = null; // ip_forward before the first fixture of this process changed it
let hooksInstalled = false;

function onSignal(sig: NodeJS.Signals): void {
  for (const teardown of [...live.values()]) teardown();
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const teardown of [...live.values()]) teardown();
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('ip', args, { encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

const ipQuiet = (args: string[]) =>
  ip(args).then(
    () => true,
    () => false,
  );

function ipSync(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    /* best effort */
  }
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Removes fixtures left by processes that no longer exist (a SIGKILLed test file): host veths
 * named `dfi<id>h` whose alias names a dead owner pid, with their namespace `dfi-<id>` (the
 * routes go with the veth). Fixtures of live processes are never touched.
 */
export async function sweepStaleFakeInternets(): Promise<string[]> {
  const links = JSON.parse(await ip(['-j', '-d', 'link', 'show'])) as { ifname: string; ifalias?: string }[];
  const swept: string[] = [];
  for (const l of links) {
    const m = HOST_IF.exec(l.ifname);
    if (!m || !l.ifalias?.startsWith(ALIAS_PREFIX)) continue;
    const pid = Number(l.ifalias.slice(ALIAS_PREFIX.length));
    if (!Number.isInteger(pid) || pid === process.pid || pidAlive(pid)) continue;
    await ipQuiet(['link', 'del', l.ifname]);
    await ipQuiet(['netns', 'del', `dfi-${m[1]}`]);
    swept.push(l.ifname);
  }
  return swept;
}

// ---------------------------------------------------------------- address helpers

const v4ToInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/** A random /30 in 100.127.0.0/16 that overlaps no address or route on the host. */
async function pickLinkNet(): Promise<{ base: string; host: string; peer: string }> {
  const routes = JSON.parse(await ip(['-j', '-4', 'route', 'show', 'table', 'all'])) as { dst: string }[];
  const addrs = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as { addr_info: { local: string; prefixlen: number }[] }[];
  const taken = [
    ...routes.filter((r) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(r.dst)).map((r) => (r.dst.includes('/') ? r.dst : `${r.dst}/32`)),
    ...addrs.flatMap((a) => a.addr_info.map((i) => `${i.local}/${i.prefixlen}`)),
  ].map((c) => {
    const [a, len] = c.split('/') as [string, string];
    const size = 2 ** (32 - Number(len));
    const start = Math.floor(v4ToInt(a) / size) * size;
    return [start, start + size - 1] as const;
  });
  for (let i = 0; i < 64; i++) {
    const x = randomInt(256);
    const y = randomInt(64) * 4;
    const start = v4ToInt(`100.127.${x}.${y}`);
    // Ignore the default route (and any other covering prefix wider than a /8).
    if (taken.some(([s, e]) => e - s < 2 ** 24 && s <= start + 3 && start <= e)) continue;
    return { base: `100.127.${x}.${y}`, host: `100.127.${x}.${y + 1}`, peer: `100.127.${x}.${y + 2}` };
  }
  throw new Error('no free /30 in 100.127.0.0/16');
}

function matches(o: Observation, filter: ObservationFilter | undefined): boolean {
  if (!filter) return true;
  if (typeof filter === 'function') return filter(o);
  const rec = o as unknown as Record<string, unknown>;
  return Object.entries(filter).every(([k, v]) => rec[k] === v);
}

// ---------------------------------------------------------------- the fixture

export async function startFakeInternet(opts: FakeInternetOptions = {}): Promise<FakeInternet> {
  if (process.getuid?.() !== 0) throw new Error('startFakeInternet needs root');
  await sweepStaleFakeInternets().catch(() => []);

  const id = randomBytes(3).toString('hex');
  const ns = `dfi-${id}`;
  const hostIf = `dfi${id}h`;
  const nsIf = `dfi${id}n`;
  const webHosts = opts.webHosts ?? ['203.0.113.10', '203.0.113.20'];
  const tcpPorts = opts.tcpPorts ?? [80, 443, 8080, 5000];
  const udpPorts = opts.udpPorts ?? [5353, 9999];
  const upstreamDns = opts.upstreamDns ?? '198.51.100.53';
  const publicResolver = opts.publicResolver === undefined ? '198.51.100.88' : opts.publicResolver;
  const dnsServers = [upstreamDns, ...(publicResolver ? [publicResolver] : [])];
  let webHosts6 = opts.webHosts6 ?? ['2001:db8:1::10'];

  // State that teardown reads: only what was actually created gets removed.
  const routes: string[][] = []; // `ip route del` argument lists
  let linkCreated = false;
  let nsCreated = false;
  let server: ChildProcess | null = null;
  let forwardHeld = false;
  let closed = false;
  let closing: Promise<void> | null = null;

  const releaseForward = () => {
    if (!forwardHeld) return;
    forwardHeld = false;
    const othersHold = [...live.keys()].some((k) => k !== ns);
    if (!othersHold && forwardSaved !== null) {
      try {
        writeFileSync(IP_FORWARD, forwardSaved);
      } catch {
        /* best effort */
      }
      forwardSaved = null;
    }
  };

  const teardownSync = () => {
    if (closed) return;
    closed = true;
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    for (const r of routes.splice(0)) ipSync(['route', 'del', ...r]);
    if (linkCreated) ipSync(['link', 'del', hostIf]);
    if (nsCreated) ipSync(['netns', 'del', ns]);
    releaseForward();
    live.delete(ns);
  };

  const teardown = async () => {
    if (closed) return;
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise<void>((r) => server!.once('exit', () => r()));
      server.kill('SIGTERM');
      const t = setTimeout(() => server!.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    }
    for (const r of routes.splice(0)) await ipQuiet(['route', 'del', ...r]);
    if (linkCreated) await ipQuiet(['link', 'del', hostIf]);
    if (nsCreated) await ipQuiet(['netns', 'del', ns]);
    closed = true;
    releaseForward();
    live.delete(ns);
  };

  installHooks();
  live.set(ns, teardownSync);

  const observations: Observation[] = [];
  const waiters = new Set<(o: Observation) => void>();
  const acks = new Map<number, () => void>();
  let nextAck = 1;
  let ipv6 = false;
  let link: Awaited<ReturnType<typeof pickLinkNet>>;

  try {
    // Host side first, labelled with our pid, so a sweep can attribute it if we die mid-way.
    link = await pickLinkNet();
    await ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    linkCreated = true;
    await ip(['link', 'set', 'dev', hostIf, 'alias', `${ALIAS_PREFIX}${process.pid}`]);
    await ip(['netns', 'add', ns]);
    nsCreated = true;
    await ip(['link', 'set', nsIf, 'netns', ns]);
    await ip(['addr', 'add', `${link.host}/30`, 'dev', hostIf]);
    await ip(['-n', ns, 'addr', 'add', `${link.peer}/30`, 'dev', nsIf]);
    for (const a of [...webHosts, ...dnsServers]) await ip(['-n', ns, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    await ip(['link', 'set', hostIf, 'up']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    await ip(['-n', ns, 'link', 'set', nsIf, 'up']);
    // Replies to anything (the host's veth address, or un-masqueraded container addresses) go back to the host.
    await ip(['-n', ns, 'route', 'add', 'default', 'via', link.host, 'dev', nsIf]);

    const before = readFileSync(IP_FORWARD, 'utf8').trim();
    if (before !== '1') {
      if (forwardSaved === null) forwardSaved = before;
      writeFileSync(IP_FORWARD, '1');
    }
    forwardHeld = true;

    for (const a of [...webHosts, ...dnsServers]) {
      // `route add` (not replace) fails if another fixture already routes this address: never steal it.
      await ip(['route', 'add', `${a}/32`, 'via', link.peer, 'dev', hostIf]).catch((err: Error) => {
        throw new Error(`${a} is already routed on this host (another fake internet running?): ${err.message}`);
      });
      routes.push([`${a}/32`, 'via', link.peer, 'dev', hostIf]);
    }

    if (opts.ipv6 !== false && webHosts6.length > 0) ipv6 = await setUpIpv6();
    if (!ipv6) webHosts6 = [];

    // The servers, inside the namespace. stdin EOF (our death) makes them exit.
    const config: FakeHostServerConfig = {
      web: [...webHosts, ...webHosts6].map((host) => ({ host, tcp: tcpPorts, udp: udpPorts })),
      dns: dnsServers,
      records: Object.fromEntries(
        Object.entries(opts.dns ?? {}).map(([n, addrs]) => [n.toLowerCase().replace(/\.$/, ''), { addrs, ttl: 30 }]),
      ),
    };
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, SERVER, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    server = child;
    // A forgotten close() must not keep the test process alive: the exit hook cleans up then.
    child.unref();
    (child.stdin as unknown as Socket).unref();
    (child.stdout as unknown as Socket).unref();
    child.stdin.on('error', () => {});

    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        process.stderr.write(`[fake-internet] ${line}\n`);
        return;
      }
      switch (msg.kind) {
        case 'ready':
          readyResolve();
          return;
        case 'ack':
          acks.get(msg.id as number)?.();
          acks.delete(msg.id as number);
          return;
        case 'error':
          if (msg.fatal) readyReject(new Error(`fake host server: ${String(msg.message)}`));
          else process.stderr.write(`[fake-internet] ${String(msg.message)}\n`);
          return;
        default: {
          const o = { ...msg, at: Date.now() } as Observation;
          observations.push(o);
          for (const w of [...waiters]) w(o);
        }
      }
    });
    child.once('exit', (code, sig) => readyReject(new Error(`fake host server exited (${code ?? sig}) before it was ready`)));
    const timer = setTimeout(() => readyReject(new Error('fake host server not ready in time')), opts.readyTimeoutMs ?? 15_000);
    try {
      await ready;
    } finally {
      clearTimeout(timer);
    }
    for (const a of [...webHosts, ...dnsServers, ...webHosts6]) await assertRoute(a);
  } catch (err) {
    await teardown();
    throw err;
  }

  async function setUpIpv6(): Promise<boolean> {
    try {
      if (readFileSync(IPV6_DISABLED, 'utf8').trim() !== '0') return false;
    } catch {
      return false;
    }
    // A documentation /64 per fixture for the link; nodad so the addresses are usable at once.
    const net6 = `2001:db8:ff:${link.host
      .split('.')
      .slice(2)
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('')}`;
    const added: string[][] = [];
    try {
      await ip(['-6', 'addr', 'add', `${net6}::1/64`, 'dev', hostIf, 'nodad']);
      await ip(['-n', ns, '-6', 'addr', 'add', `${net6}::2/64`, 'dev', nsIf, 'nodad']);
      for (const a of webHosts6) await ip(['-n', ns, '-6', 'addr', 'add', `${a}/128`, 'dev', 'lo']);
      await ip(['-n', ns, '-6', 'route', 'add', 'default', 'via', `${net6}::1`, 'dev', nsIf]);
      for (const a of webHosts6) {
        await ip(['-6', 'route', 'add', `${a}/128`, 'via', `${net6}::2`, 'dev', hostIf]);
        const r = [`${a}/128`, 'via', `${net6}::2`, 'dev', hostIf];
        added.push(r);
        routes.push(r);
      }
      return true;
    } catch (err) {
      process.stderr.write(`[fake-internet] IPv6 unavailable, continuing without: ${(err as Error).message}\n`);
      for (const r of added) {
        await ipQuiet(['-6', 'route', 'del', ...r]);
        routes.splice(routes.indexOf(r), 1);
      }
      await ipQuiet(['-6', 'addr', 'del', `${net6}::1/64`, 'dev', hostIf]);
      return false;
    }
  }

  async function assertRoute(addr: string): Promise<void> {
    if (closed) throw new Error(`fake internet ${ns} is closed: not sending to ${addr}`);
    const out = JSON.parse(await ip(['-j', 'route', 'get', addr])) as { dev?: string; gateway?: string }[];
    const dev = out[0]?.dev;
    if (dev !== hostIf)
      throw new Error(
        `route to ${addr} leaves via ${dev ?? '?'}${out[0]?.gateway ? ` (gateway ${out[0].gateway})` : ''}, not fake internet veth ${hostIf}: refusing to send`,
      );
  }

  function command(cmd: Record<string, unknown>, timeoutMs = 5000): Promise<void> {
    const stdin = server?.stdin;
    if (closed || !stdin?.writable) return Promise.reject(new Error(`fake internet ${ns} is closed`));
    const id = nextAck++;
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        acks.delete(id);
        reject(new Error(`fake host server did not ack ${String(cmd.op)}`));
      }, timeoutMs);
      acks.set(id, () => {
        clearTimeout(t);
        resolve();
      });
      stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  function waitFor<T extends Observation>(filter: ObservationFilter, timeoutMs = 5000): Promise<T> {
    const seen = observations.find((o) => matches(o, filter));
    if (seen) return Promise.resolve(seen as T);
    return new Promise<T>((resolve, reject) => {
      const waiter = (o: Observation) => {
        if (!matches(o, filter)) return;
        clearTimeout(t);
        waiters.delete(waiter);
        resolve(o as T);
      };
      const t = setTimeout(() => {
        waiters.delete(waiter);
        const recent = observations
          .slice(-10)
          .map((o) => JSON.stringify(o))
          .join('\n  ');
        reject(new Error(`no matching observation within ${timeoutMs} ms; last ones:\n  ${recent || '(none)'}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  async function tcpExchange(host: string, port: number, payload = 'hello\n', timeoutMs = 5000): Promise<string> {
    await assertRoute(host);
    const lines = (payload.match(/\n/g) ?? []).length;
    return new Promise<string>((resolve, reject) => {
      let got = '';
      const s = tcpConnect({ host, port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`tcp ${host}:${port}: timed out, got ${JSON.stringify(got)}`));
      }, timeoutMs);
      s.setEncoding('utf8');
      s.on('connect', () => {
        s.write(payload);
        if (lines === 0) s.end();
      });
      s.on('data', (d: string) => {
        got += d;
        if ((got.match(/\n/g) ?? []).length >= lines) s.end();
      });
      s.on('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      s.on('close', () => {
        clearTimeout(t);
        resolve(got);
      });
    });
  }

  async function udpExchange(host: string, port: number, payload = 'hello\n', timeoutMs = 3000): Promise<string> {
    await assertRoute(host);
    const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    try {
      return await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`udp ${host}:${port}: no reply`)), timeoutMs);
        sock.on('message', (m) => {
          clearTimeout(t);
          resolve(m.toString('utf8'));
        });
        sock.on('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
        sock.send(payload, port, host);
      });
    } finally {
      sock.close();
    }
  }

  async function dnsQuery(srv: string, name: string, qtype: 'A' | 'AAAA' = 'A', transport: 'udp' | 'tcp' = 'udp', timeoutMs = 3000) {
    await assertRoute(srv);
    const query = dnsPacket.encode({
      type: 'query',
      id: randomInt(65536),
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: qtype, name }],
    });
    let raw: Buffer;
    if (transport === 'udp') {
      const sock = createSocket(isIPv6(srv) ? 'udp6' : 'udp4');
      try {
        raw = await new Promise<Buffer>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`dns ${srv}: no reply`)), timeoutMs);
          sock.on('message', (m) => {
            clearTimeout(t);
            resolve(m);
          });
          sock.on('error', (e) => {
            clearTimeout(t);
            reject(e);
          });
          sock.send(query, 53, srv);
        });
      } finally {
        sock.close();
      }
    } else {
      raw = await new Promise<Buffer>((resolve, reject) => {
        let buf = Buffer.alloc(0);
        const s = tcpConnect({ host: srv, port: 53 });
        const t = setTimeout(() => {
          s.destroy();
          reject(new Error(`dns/tcp ${srv}: no reply`));
        }, timeoutMs);
        s.on('connect', () => {
          const framed = Buffer.alloc(2 + query.length);
          framed.writeUInt16BE(query.length, 0);
          query.copy(framed, 2);
          s.write(framed);
        });
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            clearTimeout(t);
            s.end();
            resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          }
        });
        s.on('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
      });
    }
    return dnsPacket.decode(raw) as dnsPacket.DecodedPacket & { rcode: string };
  }

  const close = () => (closing ??= teardown());

  return {
    ns,
    hostIf,
    nsIf,
    hostAddr: link.host,
    nsAddr: link.peer,
    ipv6,
    webHosts,
    webHosts6,
    tcpPorts,
    udpPorts,
    upstreamDns,
    publicResolver,
    addresses: [...webHosts, ...dnsServers, ...webHosts6],
    observations,
    assertRoute,
    setDns: (name, addrs, ttl = 30) => command({ op: 'setDns', name, addrs, ttl }),
    deleteDns: (name) => command({ op: 'deleteDns', name }),
    waitFor,
    received: <T extends Observation>(filter?: ObservationFilter) => observations.filter((o) => matches(o, filter)) as T[],
    clear: () => {
      observations.length = 0;
    },
    tcpExchange,
    udpExchange,
    dnsQuery,
    close,
    [Symbol.asyncDispose]: close,
  };
}
