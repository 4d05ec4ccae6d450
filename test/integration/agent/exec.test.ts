/**
 * Executes through Director's agent in real sandboxes (the agent is each container's main
 * process, mounted read-only, talking over its channel socket).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AgentClient } from '../../../runtime/sandbox/agent/client.ts';
import { agentLab, run, type AgentLab } from '../../helpers/agent.ts';
import { BASE, eventually } from '../../helpers/runtime.ts';

const test = suite('agent exec');
let lab: AgentLab;
let bb: AgentClient;
let base: AgentClient;

test.before(async () => {
  lab = agentLab();
  const [a, b] = await Promise.all([
    lab.sandbox({ request: { environment: { BASE_VAR: 'from-sandbox' } } }),
    lab.sandbox({ image: BASE, request: { environment: { BASE_VAR: 'from-sandbox' } } }),
  ]);
  bb = a.agent!;
  base = b.agent!;
});
test.after(async () => {
  await lab.cleanup();
});

test('runs echo in a busybox and a Debian sandbox and returns its output and exit code', async () => {
  for (const agent of [bb, base]) {
    const r = await run(agent, { argv: ['echo', 'hello', 'agent'] });
    assert.is(r.stdout, 'hello agent\n');
    assert.is(r.stderr, '');
    assert.equal(r.exit, { exitCode: 0, signal: null, timedOut: false });
  }
});

test("gives each exec its own environment and working directory over the sandbox's", async () => {
  const script = 'echo "$BASE_VAR|${ONE:-unset}|$(pwd)|$(id -u)"';
  const first = await run(bb, { argv: ['sh', '-c', script], env: { ONE: '1' }, workdir: '/tmp' });
  assert.is(first.stdout, 'from-sandbox|1|/tmp|1000\n');
  const second = await run(bb, { argv: ['sh', '-c', script] });
  assert.is(second.stdout, 'from-sandbox|unset|/workspace|1000\n', 'nothing of the first exec leaks into the next');
  const override = await run(bb, { argv: ['sh', '-c', 'echo $BASE_VAR'], env: { BASE_VAR: 'per-call' } });
  assert.is(override.stdout, 'per-call\n');
  // The command is looked up on the exec's own PATH, as docker exec does.
  const noPath = await run(bb, { argv: ['sh', '-c', 'true'], env: { PATH: '/nonexistent' } });
  assert.is(noPath.exit.exitCode, 127);
  assert.match(noPath.stderr, /sh/);
});

test('keeps stdout and stderr apart and each in order', async () => {
  const r = await run(base, {
    argv: ['sh', '-c', 'echo o1; sleep 0.1; echo e1 >&2; sleep 0.1; echo o2; sleep 0.1; echo e2 >&2; printf tail'],
  });
  assert.is(r.stdout, 'o1\no2\ntail');
  assert.is(r.stderr, 'e1\ne2\n');
  // The order across the two streams is not asserted: an agent descheduled for longer than the
  // sleeps finds both pipes readable in one poll. Each stream keeps its own order (above).
});

test('reports exit codes, signals and commands that cannot start', async () => {
  assert.is((await run(bb, { argv: ['sh', '-c', 'exit 42'] })).exit.exitCode, 42);
  const term = await run(bb, { argv: ['sh', '-c', 'kill -TERM $$; sleep 5'] });
  assert.equal(term.exit, { exitCode: 143, signal: 'SIGTERM', timedOut: false });
  const missing = await run(bb, { argv: ['no-such-command'] });
  assert.is(missing.exit.exitCode, 127);
  assert.match(missing.stderr, /no-such-command: No such file or directory/);
  const noDir = await run(bb, { argv: ['true'], workdir: '/does/not/exist' });
  assert.is(noDir.exit.exitCode, 126);
  assert.match(noDir.stderr, /cannot change to \/does\/not\/exist/);
});

const alive = async (agent: AgentClient, pids: string[]) =>
  (await run(agent, { argv: ['sh', '-c', `for p in ${pids.join(' ')}; do kill -0 $p 2>/dev/null && echo $p; done; true`] })).stdout.trim();

test('a timeout kills the whole process group, and children that left it with setsid', async () => {
  const e = bb.exec({
    argv: ['sh', '-c', 'sleep 60 & echo $!; setsid sleep 61 & echo $!; sleep 62'],
    timeoutMs: 600,
  });
  let out = '';
  e.stdout.on('data', (d: Buffer) => (out += d.toString()));
  e.stderr.resume();
  const exit = await e.exit;
  assert.equal(exit, { exitCode: 137, signal: 'SIGKILL', timedOut: true });
  const pids = out.trim().split('\n');
  assert.is(pids.length, 2, out);
  assert.is(await alive(bb, pids), '', 'the background child and the setsid child are gone');
});

test('kill sends a signal to a running exec and its group', async () => {
  const e = bb.exec({ argv: ['sh', '-c', 'sleep 60 & echo $!; wait'], timeoutMs: 30_000 });
  let out = '';
  e.stdout.on('data', (d: Buffer) => (out += d.toString()));
  e.stderr.resume();
  await eventually(() => out.includes('\n'));
  await e.kill('SIGTERM');
  const exit = await e.exit;
  assert.is(exit.signal, 'SIGTERM');
  assert.is(exit.timedOut, false);
  assert.is(await alive(bb, [out.trim()]), '');
});

test('an exec ends when its process and everything holding its output end', async () => {
  // As with docker exec: a background process that keeps stdout open keeps the exec running.
  const t0 = Date.now();
  const r = await run(bb, { argv: ['sh', '-c', '(sleep 0.4; echo late) & echo early'] });
  assert.is(r.stdout, 'early\nlate\n');
  assert.ok(Date.now() - t0 >= 400);
  // One that lets go of its output does not.
  const detached = await run(bb, { argv: ['sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!'] });
  assert.is(detached.exit.exitCode, 0);
  await run(bb, { argv: ['kill', detached.stdout.trim()] });
});

test('20 executes at once each complete with their own output', async () => {
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      run(i % 2 ? bb : base, { argv: ['sh', '-c', 'sleep 0.2; echo "$N"; echo "err$N" >&2; exit $((N % 7))'], env: { N: String(i) } }),
    ),
  );
  results.forEach((r, i) => {
    assert.is(r.stdout, `${i}\n`);
    assert.is(r.stderr, `err${i}\n`);
    assert.is(r.exit.exitCode, i % 7);
  });
  assert.is(bb.running + base.running, 0);
});

test('stdin reaches the process, in full, and is closed at its end', async () => {
  assert.is((await run(bb, { argv: ['cat'] }, 'hello\nworld')).stdout, 'hello\nworld');
  const big = 'x'.repeat(3 * 1024 * 1024 + 17);
  const r = await run(bb, { argv: ['wc', '-c'] }, big);
  assert.is(r.stdout.trim(), String(big.length));
  // Without stdin the process reads end of file at once.
  assert.is((await run(bb, { argv: ['sh', '-c', 'cat; echo done'] })).stdout, 'done\n');
});

test('large output arrives complete and in order, at the pace of a slow reader', async () => {
  const size = 6 * 1024 * 1024;
  const e = base.exec({ argv: ['sh', '-c', `head -c ${size} /dev/zero | tr '\\0' a; echo; echo end >&2`], timeoutMs: 30_000 });
  let got = 0;
  let paused = false;
  e.stdout.on('data', (d: Buffer) => {
    got += d.length;
    if (!paused && got > 512 * 1024) {
      paused = true;
      e.stdout.pause();
      setTimeout(() => e.stdout.resume(), 300);
    }
  });
  let err = '';
  e.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = await e.exit;
  assert.is(exit.exitCode, 0);
  assert.is(got, size + 1);
  assert.is(err, 'end\n');
  assert.ok(base.alive, 'the agent kept within its window (a client refuses output beyond it)');
});

test('a tty exec gets a pty and its resizes', async () => {
  const e = base.exec({ argv: ['sh', '-c', 'tty; stty size; read x; stty size'], tty: { cols: 80, rows: 24 }, timeoutMs: 10_000 });
  let out = '';
  e.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await eventually(() => /24 80/.test(out));
  assert.match(out, /\/dev\/pts\/\d+/);
  await e.resize(132, 40);
  e.stdin!.write('\n');
  const exit = await e.exit;
  assert.is(exit.exitCode, 0);
  assert.match(out, /40 132/);
});

test('with a command the agent runs it, serves executes meanwhile, and the sandbox ends with its status', async () => {
  const sb = await lab.sandbox({ command: ['sh', '-c', 'sleep 1; exit 7'] });
  const hello = await sb.agent!.ready;
  assert.is(hello.hasCommand, true);
  assert.is((await run(sb.agent!, { argv: ['echo', 'beside'] })).stdout, 'beside\n');
  const ended = await eventually(async () => {
    const s = await lab.engine.inspectContainer(sb.containerId);
    return s && !s.running ? s : null;
  });
  assert.is(ended.exitCode, 7);
  assert.is(sb.agent!.alive, false);
});

test('a fork refused by the pids limit fails the exec with EAGAIN and is counted in the pids cgroup', async () => {
  const sb = await lab.sandbox({ request: { resourceLimits: { pids: 12 } } });
  const agent = sb.agent!;
  const before = (await lab.engine.pidsLimitHits(sb.containerId)) ?? 0;
  // Docker's init and the agent's keeper and server are 3 of the 12; nine sleeping executes take the rest.
  const sleepers = Array.from({ length: 9 }, () => agent.exec({ argv: ['sleep', '60'], timeoutMs: 60_000 }));
  const pids = await Promise.all(sleepers.map((s) => s.started));
  assert.ok(pids.every((p) => typeof p === 'number' && p > 0));
  const refused = await run(agent, { argv: ['echo', 'no room'] });
  assert.is(refused.exit.exitCode, -1);
  assert.match(refused.exit.error ?? '', /EAGAIN/, JSON.stringify(refused));
  await Promise.all(sleepers.map((s) => s.kill()));
  await Promise.all(sleepers.map((s) => s.exit));
  assert.is((await run(agent, { argv: ['echo', 'room again'] })).stdout, 'room again\n');
  const after = await lab.engine.pidsLimitHits(sb.containerId);
  assert.ok(after !== null && after > before, `pids.events max went from ${before} to ${after}`);
});

test.run();
