import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pickRunnable, type WaitingRun } from '../../../orchestration/workflows/queue.ts';

const w = (id: string, departmentId: string | null, state: 'pending' | 'queued' = 'pending'): WaitingRun => ({ id, departmentId, state });
const none = { total: 0, byDepartment: new Map<string, number>() };
const limits: Record<string, number> = { depA: 2, depB: 1 };
const limitOf = (d: string) => limits[d] ?? null;

test("a department's maxConcurrentTasks bounds its running runs; the rest wait, oldest first", () => {
  const got = pickRunnable([w('r1', 'depA'), w('r2', 'depA'), w('r3', 'depA'), w('r4', 'depA')], none, limitOf, 100);
  assert.equal(got.start, ['r1', 'r2']);
  assert.equal(got.queue, ['r3', 'r4']);
});

test('runs already running count against the bound', () => {
  const got = pickRunnable([w('r3', 'depA', 'queued'), w('r4', 'depA')], { total: 1, byDepartment: new Map([['depA', 1]]) }, limitOf, 100);
  assert.equal(got.start, ['r3']);
  assert.equal(got.queue, ['r4']);
});

test("a full department does not hold back another department's runs, nor runs without one", () => {
  const got = pickRunnable(
    [w('a1', 'depB'), w('a2', 'depB'), w('b1', 'depA'), w('n1', null)],
    { total: 0, byDepartment: new Map() },
    limitOf,
    100,
  );
  assert.equal(got.start, ['a1', 'b1', 'n1']);
  assert.equal(got.queue, ['a2']);
});

test('the instance bound applies to every run; queued runs are not queued again', () => {
  const got = pickRunnable(
    [w('q1', null, 'queued'), w('p1', null), w('p2', null), w('q2', null, 'queued')],
    { total: 2, byDepartment: new Map() },
    limitOf,
    3,
  );
  assert.equal(got.start, ['q1']);
  assert.equal(got.queue, ['p1', 'p2'], 'only pending runs change to queued');
});

test('a department that bounds nothing (deleted) does not limit its runs', () => {
  const got = pickRunnable([w('r1', 'gone'), w('r2', 'gone'), w('r3', 'gone')], none, limitOf, 100);
  assert.equal(got.start, ['r1', 'r2', 'r3']);
});

test.run();
