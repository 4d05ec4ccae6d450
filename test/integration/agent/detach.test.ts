/**
 * Execs flagged `finishOnDisconnect` outlive Director's connection to the agent (a Director
 * killed or shut down mid-restore must not leave the restore's swap half done); the others
 * are killed as before. Checked from outside the agent, through `docker exec`.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { agentLab, type AgentLab } from '../../helpers/agent.ts';
import { eventually, sleep } from '../../helpers/runtime.ts';

const test = suite('agent: finish on disconnect');
let lab: AgentLab;

test.before(() => {
  lab = agentLab();
});
test.after(async () => {
  await lab.cleanup();
});

async function dockerSh(containerId: string, script: string): Promise<string> {
  const h = await lab.engine.exec(containerId, { cmd: ['sh', '-c', script], env: {}, user: '1000:1000' });
  let out = '';
  h.stdout.on('data', (d: Buffer) => (out += d.toString()));
  h.stderr.resume();
  await h.wait();
  return out;
}

const cat = (containerId: string, file: string) => dockerSh(containerId, `cat ${file} 2>/dev/null || echo MISSING`);

test('a flagged exec runs to its end after the connection closes (input ended, output dropped); an unflagged one is killed', async () => {
  const sb = await lab.sandbox();
  const agent = sb.agent!;
  // Reads stdin to its end (only the disconnect ends it), writes far more than the output window
  // (nobody reads it any more: it must be dropped, not block), then leaves its mark.
  const flagged = agent.exec({
    argv: ['sh', '-c', 'cat > /tmp/input; sleep 0.5; head -c 4000000 /dev/zero; echo done > /tmp/flagged'],
    stdin: true,
    timeoutMs: 20_000,
    finishOnDisconnect: true,
  });
  // Waits for the end of its input too: closing its stdin instead of killing it would let it write.
  const plain = agent.exec({ argv: ['sh', '-c', 'cat > /dev/null; sleep 0.2; echo done > /tmp/plain'], stdin: true, timeoutMs: 20_000 });
  flagged.stdin!.write('partial input');
  plain.stdin!.write('x');
  await Promise.all([flagged.started, plain.started]);
  // The input reached the process before the connection goes.
  await eventually(async () => (await cat(sb.containerId, '/tmp/input')) === 'partial input');
  await agent.close();
  assert.is((await flagged.exit).agentLost, true, 'Director sees the outcome as unknown');
  assert.is((await plain.exit).agentLost, true);

  assert.is(await eventually(async () => ((await cat(sb.containerId, '/tmp/flagged')) === 'done\n' ? 'done' : null)), 'done');
  await sleep(1000); // well past the unflagged exec's sleep, had it gone on
  assert.is(await cat(sb.containerId, '/tmp/plain'), 'MISSING\n', 'the unflagged exec was killed at the disconnect');
  // Both were reaped by the agent: no process of theirs is left, not even a zombie.
  const ps = await dockerSh(sb.containerId, 'ps -o pid,stat,args');
  assert.not.match(ps, /\sZ/, `no zombies:\n${ps}`);
  assert.not.match(ps, /head -c|\/tmp\/(flagged|plain)/, `no process left:\n${ps}`);
});

test('a flagged exec is still killed at its timeout after the connection closed, with its group', async () => {
  const sb = await lab.sandbox();
  const agent = sb.agent!;
  const e = agent.exec({
    argv: ['sh', '-c', 'sleep 37 & echo started > /tmp/long; sleep 38; echo late > /tmp/late'],
    timeoutMs: 3000,
    finishOnDisconnect: true,
  });
  const t0 = Date.now();
  await e.started;
  await eventually(async () => (await cat(sb.containerId, '/tmp/long')) === 'started\n');
  await agent.close();
  const running = await dockerSh(sb.containerId, 'ps -o args');
  if (Date.now() - t0 < 2500) assert.match(running, /sleep 38/, 'not killed at the disconnect');
  await eventually(async () => !/sleep 3[78]/.test(await dockerSh(sb.containerId, 'ps -o args')), 15_000);
  const gone = Date.now() - t0;
  assert.ok(gone >= 2900 && gone < 7000, `killed at its 3 s timeout with its group, not left running (${gone} ms after it started)`);
  assert.is(await cat(sb.containerId, '/tmp/late'), 'MISSING\n');
  // The sandbox and its agent's keeper keep running.
  assert.is((await lab.engine.inspectContainer(sb.containerId))?.running, true);
});

test.run();
