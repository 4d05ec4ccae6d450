import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killMarkedCommand } from '../../../runtime/engine/kill-marked.ts';

test('kills exactly the processes whose environment holds NAME=value, children included, and says how many', async () => {
  const mark = randomBytes(8).toString('hex');
  const env = { ...process.env, KILL_MARKED_TEST: mark };
  // A parent with a child (both inherit the marker), and a look-alike without it.
  const marked = spawn('sh', ['-c', 'sleep 30 & sleep 31; wait'], { env, stdio: 'ignore' });
  const other = spawn('sleep', ['32'], { env: { ...process.env, KILL_MARKED_TEST: `${mark}x` }, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((r) => marked.once('exit', (_c, s) => r(s)));
  await new Promise((r) => setTimeout(r, 200));
  try {
    const [cmd, ...args] = killMarkedCommand('KILL_MARKED_TEST', mark);
    const r = spawnSync(cmd!, args, { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout.trim(), '3', 'the shell and its two sleeps');
    assert.is(await exited, 'SIGKILL');
    // A killed child is reaped (and its signal recorded) by Node within a few ms.
    await new Promise((r) => setTimeout(r, 150));
    assert.is(other.signalCode, null, 'a process without the exact marker was killed');
    assert.is(other.exitCode, null, 'a process without the exact marker ended');
  } finally {
    marked.kill('SIGKILL');
    other.kill('SIGKILL');
  }
});

test.run();
