import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectorError } from '../../../core/errors.ts';
import { compileCriteria, judge, type Criterion } from '../../../orchestration/workflows/criteria.ts';

const exec = { type: 'execute' };
const verify = { type: 'verify' };
const ckp = { type: 'checkpoint' };

function refused(raw: unknown, at: number, steps: { type: string }[]): { field: string; issue: string } {
  try {
    compileCriteria(raw, at, steps);
  } catch (err) {
    assert.instance(err, DirectorError);
    const e = err as DirectorError;
    assert.is(e.code, 'VALIDATION_ERROR');
    return { field: String(e.details?.field), issue: String(e.details?.issue) };
  }
  throw new Error(`accepted ${JSON.stringify(raw)}`);
}

test("the seed's phrase 'tests pass' means the previous execute exited 0", () => {
  const [c] = compileCriteria('tests pass', 1, [exec, verify]);
  assert.equal(c, { kind: 'exitCode', exitCode: 0, of: 0, text: 'tests pass (exit code 0 of step 1)' });
  for (const p of ['Tests Pass', '  tests   passed. ', 'build succeeds', 'succeeds', 'all tests pass'])
    assert.is(compileCriteria(p, 1, [exec, verify])[0]!.kind, 'exitCode', p);
});

test('"the previous execute" is the nearest execute before the verify, skipping checkpoints', () => {
  const steps = [exec, ckp, exec, ckp, verify];
  assert.is((compileCriteria('tests pass', 4, steps)[0] as { of: number }).of, 2);
});

test('phrases with values: exit code N, output contains "TEXT" (literal, case kept), file PATH exists', () => {
  assert.equal(compileCriteria('exit code 3', 1, [exec, verify])[0], {
    kind: 'exitCode',
    exitCode: 3,
    of: 0,
    text: 'exit code 3 (exit code 3 of step 1)',
  });
  const c = compileCriteria('output contains "All 3 passed (100%)"', 1, [exec, verify])[0] as Criterion & { pattern: string };
  assert.is(c.kind, 'stdoutMatches');
  assert.ok(judge(c, { exitCode: 0, timedOut: false, stdout: 'ok\nAll 3 passed (100%)\n' }).ok);
  assert.not.ok(judge(c, { exitCode: 0, timedOut: false, stdout: 'all 3 passed (100%)' }).ok, 'case is kept');
  assert.equal(compileCriteria('file /workspace/dist/app.js exists', 0, [verify])[0], {
    kind: 'fileExists',
    path: '/workspace/dist/app.js',
    text: '/workspace/dist/app.js exists',
  });
});

test('structured criteria and arrays of them', () => {
  const got = compileCriteria(
    [
      { exitCode: 0 },
      { stdoutMatches: '^ok$' },
      { command: 'test -s /workspace/out' },
      { command: ['true'] },
      { fileExists: '/workspace/x/' },
    ],
    1,
    [exec, verify],
  );
  assert.equal(
    got.map((c) => c.kind),
    ['exitCode', 'stdoutMatches', 'command', 'command', 'fileExists'],
  );
  assert.is((got[4] as { path: string }).path, '/workspace/x', 'one trailing slash is dropped');
});

test('criteria that cannot be checked are refused naming the step', () => {
  assert.equal(refused('looks good to me', 1, [exec, verify]).field, 'steps[1].criteria');
  assert.match(refused('looks good to me', 1, [exec, verify]).issue, /not a criterion Director can check/);
  assert.equal(refused('tests pass', 0, [verify, exec]).field, 'steps[0].criteria', 'no execute before the verify');
  assert.match(refused('tests pass', 0, [verify]).issue, /needs an execute step before this verify/);
  assert.is(refused({ stdoutMatches: '(' }, 1, [exec, verify]).field, 'steps[1].criteria.stdoutMatches');
  assert.is(refused({ exitCode: 300 }, 1, [exec, verify]).field, 'steps[1].criteria.exitCode');
  assert.is(refused({ exitCode: 0, command: 'x' }, 1, [exec, verify]).field, 'steps[1].criteria');
  assert.is(refused({ colour: 'green' }, 1, [exec, verify]).field, 'steps[1].criteria.colour');
  assert.is(refused({ fileExists: 'relative/path' }, 1, [exec, verify]).field, 'steps[1].criteria.fileExists');
  assert.is(refused({ fileExists: '/a/../etc' }, 1, [exec, verify]).field, 'steps[1].criteria.fileExists');
  assert.is(refused({ command: [] }, 1, [exec, verify]).field, 'steps[1].criteria.command');
  assert.is(refused([], 1, [exec, verify]).field, 'steps[1].criteria');
  assert.is(refused(['tests pass', 'maybe'], 1, [exec, verify]).field, 'steps[1].criteria[1]');
  assert.is(refused(42, 1, [exec, verify]).field, 'steps[1].criteria');
  assert.is(refused(null, 1, [exec, verify]).field, 'steps[1].criteria');
});

test('judging: exit codes, timeouts never pass, regexes, commands and files', () => {
  const [exit0] = compileCriteria('tests pass', 1, [exec, verify]);
  assert.equal(judge(exit0!, { exitCode: 0, timedOut: false, stdout: '' }), { ok: true, saw: 'exit code 0' });
  assert.equal(judge(exit0!, { exitCode: 1, timedOut: false, stdout: '' }), { ok: false, saw: 'exit code 1' });
  assert.equal(judge(exit0!, { exitCode: 0, timedOut: true, stdout: '' }), { ok: false, saw: 'step 1 timed out' });
  const [re] = compileCriteria({ stdoutMatches: 'passed: \\d+' }, 1, [exec, verify]);
  assert.ok(judge(re!, { exitCode: 1, timedOut: false, stdout: 'passed: 12' }).ok, 'stdoutMatches ignores the exit code');
  assert.match(judge(re!, { exitCode: 0, timedOut: false, stdout: 'failed' }).saw, /does not match/);
  const [cmd] = compileCriteria({ command: 'x' }, 0, [verify]);
  assert.equal(judge(cmd!, { exitCode: 2, timedOut: false, stdout: '' }), { ok: false, saw: 'the command exited 2' });
  const [file] = compileCriteria({ fileExists: '/workspace/a' }, 0, [verify]);
  assert.equal(judge(file!, { exitCode: 1, timedOut: false, stdout: '' }), { ok: false, saw: '/workspace/a does not exist' });
  assert.ok(judge(file!, { exitCode: 0, timedOut: false, stdout: '' }).ok);
});

test.run();
