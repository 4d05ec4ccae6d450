import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { ExecHandle, ExecOptions } from '../engine.ts';
import { killMarkedCommand } from '../kill-marked.ts';

/** Environment variable carried by every exec'd process and inherited by its descendants. */
export const EXEC_MARKER_ENV = 'DIRECTOR_EXEC_ID';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a process in a running container. Docker makes the exec'd process the leader of its
 * own session and process group; `kill()` SIGKILLs that group and also every process that
 * still carries this exec's marker in its environment, so children that called setsid() die
 * too. With a local engine this is done from the host (/proc); with a remote one through a
 * second exec of a small POSIX sh loop inside the container.
 */
export async function startExec(docker: Docker, local: boolean, containerId: string, opts: ExecOptions): Promise<ExecHandle> {
  const marker = randomBytes(12).toString('hex');
  const container = docker.getContainer(containerId);
  const env = Object.entries({ ...opts.env, [EXEC_MARKER_ENV]: marker }).map(([k, v]) => `${k}=${v}`);
  const exec = await container.exec({
    Cmd: opts.cmd,
    Env: env,
    User: opts.user,
    ...(opts.workdir ? { WorkingDir: opts.workdir } : {}),
    AttachStdin: Boolean(opts.stdin),
    AttachStdout: true,
    AttachStderr: true,
    Tty: Boolean(opts.tty),
  });
  const stream = await exec.start({ hijack: true, stdin: Boolean(opts.stdin), Tty: Boolean(opts.tty) });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (opts.tty) stream.pipe(stdout);
  else docker.modem.demuxStream(stream, stdout, stderr);

  const ended = new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stdout.end();
      stderr.end();
      resolve();
    };
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
  });

  let waitResult: Promise<{ exitCode: number; timedOut: false }> | null = null;
  const wait = () =>
    (waitResult ??= (async () => {
      await ended;
      for (let i = 0; ; i++) {
        // The exec disappears with its container: report that as an unknown (-1) exit.
        const info = await exec.inspect().catch(() => null);
        if (!info) return { exitCode: -1, timedOut: false };
        if (!info.Running || i >= 50) return { exitCode: info.ExitCode ?? (info.Running ? -1 : 0), timedOut: false };
        await sleep(20);
      }
    })());

  const kill = async () => {
    const info = await exec.inspect().catch(() => null);
    if (local && info?.Pid && (await killLocal(info.Pid, containerId, marker))) return;
    await killRemote(container, marker);
  };

  return {
    id: exec.id,
    stdout,
    stderr,
    stdin: opts.stdin ? stream : null,
    // `exec.start` resolved: the engine started the process.
    started: Promise.resolve(),
    wait,
    kill,
    resize: async (cols: number, rows: number) => {
      await exec.resize({ w: cols, h: rows });
    },
  };
}

async function cgroupOf(pid: number): Promise<string | null> {
  try {
    return await readFile(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
}

function signal(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Returns false when the exec's host pid is not visible here (the engine is not local after all). */
async function killLocal(hostPid: number, containerId: string, marker: string): Promise<boolean> {
  const cg = await cgroupOf(hostPid);
  if (cg === null || !cg.includes(containerId)) return false;
  signal(-hostPid);
  const needle = `${EXEC_MARKER_ENV}=${marker}`;
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const environ = await readFile(`/proc/${name}/environ`, 'latin1');
      if (environ.split('\0').includes(needle) && (await cgroupOf(Number(name)))?.includes(containerId)) signal(Number(name));
    } catch {
      // exited or not readable
    }
  }
  return true;
}

/**
 * Through a second exec in the container: every marked process stopped, then all killed at once
 * ({@link killMarkedCommand}), so none forks a child the scan has passed or runs on after its child died.
 */
async function killRemote(container: Docker.Container, marker: string): Promise<void> {
  try {
    const exec = await container.exec({
      Cmd: killMarkedCommand(EXEC_MARKER_ENV, marker),
      User: '1000:1000',
      AttachStdout: true,
      AttachStderr: true,
    });
    const s = await exec.start({ hijack: true, stdin: false });
    s.resume();
    await new Promise<void>((r) => {
      s.once('end', r);
      s.once('close', r);
      s.once('error', r);
    });
  } catch {
    // the container is gone or has no sh: nothing more can be done from here
  }
}
