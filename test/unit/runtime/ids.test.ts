/** Resource ids: prefixed, 96 random bits, URL-safe; drawn from a pooled CSPRNG buffer. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isId, newId } from '../../../core/ids.ts';

const test = suite('ids');

test('ids are prefixed, 16 URL-safe characters, valid for their prefix only, and never repeat across pool refills', () => {
  const seen = new Set<string>();
  // Several pools' worth (341 ids each), so ids on both sides of a refill are checked.
  for (let i = 0; i < 2000; i++) {
    const id = newId(i % 2 ? 'req' : 'sbx');
    assert.ok(isId(i % 2 ? 'req' : 'sbx', id), id);
    assert.not.ok(isId(i % 2 ? 'sbx' : 'req', id), id);
    assert.not.ok(seen.has(id), `repeated ${id}`);
    seen.add(id);
  }
});

test('the random part is not a counter: ids differ in every position across a sample', () => {
  const ids = Array.from({ length: 400 }, () => newId('evt').slice(4));
  for (let pos = 0; pos < 16; pos++) assert.ok(new Set(ids.map((s) => s[pos])).size > 20, `position ${pos} barely varies`);
});

test.run();
