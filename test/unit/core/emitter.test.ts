import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Emitter } from '../../../core/emitter.ts';

interface Events {
  ended: { id: string };
  started: string;
}

function emitter() {
  const errors: { err: unknown; event: string }[] = [];
  return { errors, e: new Emitter<Events>((err, event) => errors.push({ err, event })) };
}

test('listeners run in the order they were registered', () => {
  const { e } = emitter();
  const calls: string[] = [];
  e.on('ended', () => calls.push('first'));
  e.on('ended', () => calls.push('second'));
  e.on('ended', () => calls.push('third'));
  e.emit('ended', { id: 'a' });
  assert.equal(calls, ['first', 'second', 'third']);
});

test('a second listener does not remove the first: both receive every emit', () => {
  const { e } = emitter();
  const first: string[] = [];
  const second: string[] = [];
  e.on('ended', (r) => first.push(r.id));
  e.on('ended', (r) => second.push(r.id));
  e.emit('ended', { id: 'a' });
  e.emit('ended', { id: 'b' });
  assert.equal(first, ['a', 'b']);
  assert.equal(second, ['a', 'b']);
});

test('many listeners each get the payload once; events are kept apart', () => {
  const { e } = emitter();
  const counts = Array.from({ length: 100 }, () => 0);
  counts.forEach((_, i) => e.on('started', (s) => (counts[i]! += s === 'x' ? 1 : 100)));
  const other: unknown[] = [];
  e.on('ended', (r) => other.push(r));
  e.emit('started', 'x');
  assert.ok(counts.every((n) => n === 1));
  assert.is(other.length, 0);
  assert.is(e.listenerCount('started'), 100);
  assert.is(e.listenerCount('ended'), 1);
});

test('a throwing listener is reported and does not stop the others or the emitter', () => {
  const { e, errors } = emitter();
  const calls: string[] = [];
  const boom = new Error('boom');
  e.on('ended', () => calls.push('before'));
  e.on('ended', () => {
    throw boom;
  });
  e.on('ended', () => calls.push('after'));
  e.emit('ended', { id: 'a' });
  assert.equal(calls, ['before', 'after']);
  assert.equal(errors, [{ err: boom, event: 'ended' }]);
});

test('a listener whose promise rejects is reported too, after the others ran', async () => {
  const { e, errors } = emitter();
  const calls: string[] = [];
  e.on('ended', async () => {
    await Promise.resolve();
    throw new Error('later');
  });
  e.on('ended', () => calls.push('sync'));
  e.emit('ended', { id: 'a' });
  assert.equal(calls, ['sync']);
  await new Promise((r) => setImmediate(r));
  assert.is(errors.length, 1);
  assert.is((errors[0]!.err as Error).message, 'later');
});

test('an error handler that throws does not break the emit', () => {
  const e = new Emitter<Events>(() => {
    throw new Error('logger closed');
  });
  const calls: string[] = [];
  e.on('ended', () => {
    throw new Error('boom');
  });
  e.on('ended', () => calls.push('still'));
  e.emit('ended', { id: 'a' });
  assert.equal(calls, ['still']);
});

test('off removes exactly its own registration, also of the same function registered twice', () => {
  const { e } = emitter();
  const calls: string[] = [];
  const f = () => calls.push('f');
  const offFirst = e.on('ended', f);
  e.on('ended', () => calls.push('g'));
  e.on('ended', f);
  offFirst();
  e.emit('ended', { id: 'a' });
  assert.equal(calls, ['g', 'f']);
  offFirst();
  assert.is(e.listenerCount('ended'), 2);
});

test('a listener added or removed during an emit takes effect from the next emit', () => {
  const { e } = emitter();
  const calls: string[] = [];
  let offB = () => {};
  e.on('ended', () => {
    calls.push('a');
    offB();
    e.on('ended', () => calls.push('late'));
  });
  offB = e.on('ended', () => calls.push('b'));
  e.emit('ended', { id: '1' });
  assert.equal(calls, ['a', 'b']);
  calls.length = 0;
  e.emit('ended', { id: '2' });
  assert.equal(calls, ['a', 'late']);
});

test('emitting an event nobody listens to does nothing', () => {
  const { e, errors } = emitter();
  e.emit('started', 'x');
  assert.is(errors.length, 0);
});

test.run();
