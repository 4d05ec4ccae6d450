/**
 * Network probes run inside a sandbox (python3 in director/base). Each prints one JSON line, so
 * tests assert what happened on the wire, not just what connect() returned.
 */
import { randomBytes } from 'node:crypto';
import type { Runtime } from '../../runtime/runtime.ts';
import { caller } from './runtime.ts';

const PY_TCP = `
import json, socket, sys
host, port, payload, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(timeout)
try:
    s.connect((host, port))
    s.sendall((payload + "\\n").encode())
    data = s.recv(200).decode(errors="replace")
    print(json.dumps({"ok": bool(data), "reply": data}))
except Exception as e:
    print(json.dumps({"ok": False, "error": type(e).__name__ + ": " + str(e)}))
finally:
    s.close()
`;

const PY_UDP = `
import json, socket, sys
host, port, payload, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
try:
    s.sendto((payload + "\\n").encode(), (host, port))
    data, _ = s.recvfrom(200)
    print(json.dumps({"ok": True, "reply": data.decode(errors="replace")}))
except Exception as e:
    print(json.dumps({"ok": False, "error": type(e).__name__ + ": " + str(e)}))
`;

/** A DNS A query over UDP to an explicit server (or the system resolver when server is null). */
const PY_DNS = `
import json, socket, sys, struct, random
name, server, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
if server == "system":
    try:
        print(json.dumps({"ok": True, "addrs": sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)})}))
    except Exception as e:
        print(json.dumps({"ok": False, "error": type(e).__name__ + ": " + str(e)}))
    sys.exit(0)
qid = random.randint(0, 65535)
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
try:
    s.sendto(q, (server, 53))
    data, _ = s.recvfrom(4096)
    print(json.dumps({"ok": True, "rcode": data[3] & 15}))
except Exception as e:
    print(json.dumps({"ok": False, "error": type(e).__name__ + ": " + str(e)}))
`;

export interface ProbeResult {
  ok: boolean;
  reply?: string;
  error?: string;
  rcode?: number;
  addrs?: string[];
}

export const token = (): string => `t${randomBytes(6).toString('hex')}`;

/** Whose sandbox it is: the test runtime's workspace unless a test works in another (one made through the API). */
export type ProbeCaller = { workspace: string; actor?: string };

async function py(
  rt: Runtime,
  sandboxId: string,
  script: string,
  args: string[],
  timeoutMs: number,
  as: ProbeCaller,
): Promise<ProbeResult> {
  const r = await rt.executor.run(as, sandboxId, { command: ['python3', '-c', script, ...args], timeout: timeoutMs });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ProbeResult;
  } catch {
    throw new Error(`probe printed no result (exit ${r.exitCode}): ${r.stdout} ${r.stderr}`);
  }
}

export const tcpProbe = (rt: Runtime, id: string, host: string, port: number, payload = token(), timeoutS = 2, as: ProbeCaller = caller) =>
  py(rt, id, PY_TCP, [host, String(port), payload, String(timeoutS)], (timeoutS + 5) * 1000, as);

export const udpProbe = (rt: Runtime, id: string, host: string, port: number, payload = token(), timeoutS = 2, as: ProbeCaller = caller) =>
  py(rt, id, PY_UDP, [host, String(port), payload, String(timeoutS)], (timeoutS + 5) * 1000, as);

/** `server`: an address, or `system` for the sandbox's configured resolver. */
export const dnsProbe = (rt: Runtime, id: string, name: string, server: string, timeoutS = 2, as: ProbeCaller = caller) =>
  py(rt, id, PY_DNS, [name, server, String(timeoutS)], (timeoutS + 5) * 1000, as);
