import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importanceOf, isExpired, itemsToRemove, type RankedItem } from '../../../orchestration/context/retention.ts';

const item = (id: string, importance: number, createdMs: number, seq = createdMs): RankedItem => ({ id, importance, createdMs, seq });

test('importance: explicit value, else priority, else 0.5', () => {
  assert.is(importanceOf({ importance: 0.9, priority: 'low' }), 0.9);
  assert.is(importanceOf({ priority: 'high' }), 0.75);
  assert.is(importanceOf({ priority: 'critical' }), 1);
  assert.is(importanceOf({ priority: 'low' }), 0.25);
  assert.is(importanceOf({ priority: 'unknown' }), 0.5);
  assert.is(importanceOf(undefined), 0.5);
  assert.is(importanceOf({ importance: 0 }), 0);
});

test('an item older than maxAge expires unless it is at least as important as the threshold', () => {
  const policy = { maxAge: 1000, importanceThreshold: 0.5 };
  assert.ok(isExpired(item('a', 0.4, 0), policy, 1001));
  assert.not.ok(isExpired(item('a', 0.4, 0), policy, 1000));
  assert.not.ok(isExpired(item('b', 0.5, 0), policy, 10_000));
  assert.ok(isExpired(item('c', 0.99, 0), { maxAge: 1000 }, 1001), 'without a threshold every old item goes');
  assert.not.ok(isExpired(item('d', 0, 0), {}, 1e12), 'without maxAge nothing expires');
});

test('over maxSize: the least important goes first, then the oldest, then the first added', () => {
  const items = [item('old-low', 0.2, 1), item('new-low', 0.2, 5), item('old-high', 0.9, 0), item('mid', 0.5, 3), item('tie', 0.2, 5, 6)];
  assert.equal(itemsToRemove(items, {}, 4, 10), ['old-low']);
  assert.equal(itemsToRemove(items, {}, 3, 10), ['old-low', 'new-low']);
  assert.equal(itemsToRemove(items, {}, 2, 10), ['old-low', 'new-low', 'tie']);
  assert.equal(itemsToRemove(items, {}, 5, 10), []);
});

test('expired items go first and count toward the bound', () => {
  const items = [item('expired', 0.9, 0), item('a', 0.1, 900), item('b', 0.2, 950)];
  assert.equal(itemsToRemove(items, { maxAge: 500 }, 2, 1000), ['expired']);
  assert.equal(itemsToRemove(items, { maxAge: 500 }, 1, 1000), ['expired', 'a']);
});

test('the item just added goes itself when it is the least important', () => {
  const items = [item('a', 0.8, 1), item('b', 0.7, 2), item('just-added', 0.1, 3)];
  assert.equal(itemsToRemove(items, {}, 2, 4), ['just-added']);
});

test.run();
