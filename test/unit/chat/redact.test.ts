import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Redactor } from '../../../orchestration/vault/redact.ts';

const SECRET = 's3cr3t-token-value-42';

test('a secret is replaced wherever it appears, also base64, base64url and hex encoded', () => {
  const r = new Redactor([{ name: 'API_TOKEN', value: SECRET }]);
  const b64 = Buffer.from(SECRET).toString('base64');
  const hex = Buffer.from(SECRET).toString('hex');
  const out = r.redact(`token=${SECRET}\nb64=${b64}\nhex=${hex}\nagain ${SECRET}`);
  assert.not.match(out, SECRET);
  assert.not.match(out, b64.replace(/=+$/, ''));
  assert.not.match(out, hex);
  assert.is(out.split('[redacted:API_TOKEN]').length - 1, 4);
});

test('the longest secret is replaced first, so one containing another is replaced whole', () => {
  const r = new Redactor([
    { name: 'SHORT', value: 'abcdefgh' },
    { name: 'LONG', value: 'abcdefgh-ijklmnop' },
  ]);
  assert.is(r.redact('x abcdefgh-ijklmnop y abcdefgh'), 'x [redacted:LONG] y [redacted:SHORT]');
});

test('text cut in the middle of a secret loses the fragment too (4 characters or more)', () => {
  const r = new Redactor([{ name: 'K', value: SECRET }]);
  assert.is(r.redactCut(`out: ${SECRET.slice(0, 9)}`), 'out: [redacted:K]');
  assert.is(r.redactCut('out: s3c'), 'out: s3c', 'three characters are not a fragment');
  assert.is(r.redact(`out: ${SECRET.slice(0, 9)}`), `out: ${SECRET.slice(0, 9)}`, 'plain redact leaves fragments alone');
});

test('JSON values are copied with every string redacted, keys included', () => {
  const r = new Redactor([{ name: 'K', value: SECRET }]);
  const input = { a: [SECRET, 1, null], [SECRET]: { b: `x${SECRET}x` } };
  const out = r.redactJson(input);
  assert.not.match(JSON.stringify(out), SECRET);
  assert.equal(out.a, ['[redacted:K]', 1, null]);
  assert.is(input.a[0], SECRET, 'the input is not changed');
});

test('a redactor without secrets changes nothing', () => {
  const r = new Redactor([]);
  assert.ok(r.empty);
  const v = { a: 'b' };
  assert.is(r.redactJson(v), v);
  assert.is(r.redactCut('abc'), 'abc');
});

test.run();
