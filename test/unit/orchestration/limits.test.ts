import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyLimitCeilings, widerLimit, type LimitCeiling, type Limits } from '../../../policies/limits.ts';

const resolved: Limits = { cpu: 1, memory: 512, disk: 256, pids: 256, maxDuration: 3_600_000 };
const session: LimitCeiling = { level: 'session', id: 'ses_1', limits: { memory: 1024, cpu: 2 } };
const dep: LimitCeiling = { level: 'department', id: 'dep_1', limits: { memory: 256, pids: 64 } };

test('a request silent about a limit gets the default lowered to the tightest ceiling', () => {
  const r = applyLimitCeilings({}, resolved, [session, dep]);
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.limits, { cpu: 1, memory: 256, disk: 256, pids: 64, maxDuration: 3_600_000 });
});

test('a request over a ceiling is refused naming the outermost level that refuses', () => {
  const over = applyLimitCeilings({ memory: 2048 }, { ...resolved, memory: 2048 }, [session, dep]);
  assert.not.ok(over.ok);
  if (!over.ok) {
    assert.is(over.denial.field, 'resourceLimits.memory');
    assert.equal(over.denial.deniedBy, { level: 'session', id: 'ses_1' });
    assert.match(over.denial.issue, /session ses_1 allows memory ≤ 1024 MiB/);
  }
  const overDep = applyLimitCeilings({ memory: 512 }, resolved, [session, dep]);
  assert.not.ok(overDep.ok);
  if (!overDep.ok) assert.match(overDep.denial.issue, /department dep_1 allows memory ≤ 256/);
});

test('a request within every ceiling keeps what it asked', () => {
  const r = applyLimitCeilings({ memory: 200, pids: 32 }, { ...resolved, memory: 200, pids: 32 }, [session, dep]);
  assert.ok(r.ok);
  if (r.ok) assert.is(r.limits.memory, 200);
});

test('an inner level may only narrow the outer one', () => {
  assert.is(widerLimit({ memory: 512 }, session), null);
  assert.equal(widerLimit({ memory: 2048, cpu: 1 }, session), {
    field: 'memory',
    issue: '2048 MiB is more than session ses_1 allows memory ≤ 1024 MiB',
  });
  assert.is(widerLimit({ disk: 10_000 }, session), null, 'a limit the outer level does not set is not narrowed by it');
});

test.run();
