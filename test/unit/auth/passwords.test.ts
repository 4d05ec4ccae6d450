import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkPasswordPolicy, DUMMY_PASSWORD_HASH, generatePassword, hashPassword, verifyPassword } from '../../../api/auth/passwords.ts';
import { rejects } from './support.ts';

test('hashes with scrypt N=2^15 r=8 p=1, a 16-byte salt and a 32-byte key', async () => {
  const h = await hashPassword('correct horse battery staple');
  const [alg, n, r, p, salt, key] = h.split('$');
  assert.equal([alg, n, r, p], ['scrypt', '32768', '8', '1']);
  assert.is(Buffer.from(salt!, 'base64').length, 16);
  assert.is(Buffer.from(key!, 'base64').length, 32);
});

test('verifies the right password and refuses a wrong one', async () => {
  const h = await hashPassword('correct horse battery staple');
  assert.ok(await verifyPassword('correct horse battery staple', h));
  assert.not.ok(await verifyPassword('correct horse battery stapl', h));
  assert.not.ok(await verifyPassword('', h));
});

test('salts every hash, so equal passwords hash differently', async () => {
  assert.is.not(await hashPassword('same password twice'), await hashPassword('same password twice'));
});

test('treats canonically equivalent Unicode spellings as the same password', async () => {
  const h = await hashPassword('caf\u00e9 au lait, s\u2019il vous pla\u00eet');
  assert.ok(await verifyPassword('cafe\u0301 au lait, s\u2019il vous pla\u00eet', h));
});

test('refuses malformed hashes and parameters that would exhaust memory', async () => {
  const h = await hashPassword('correct horse battery staple');
  const parts = h.split('$');
  assert.not.ok(await verifyPassword('correct horse battery staple', 'plain-text'));
  assert.not.ok(await verifyPassword('correct horse battery staple', ['bcrypt', ...parts.slice(1)].join('$')));
  assert.not.ok(await verifyPassword('correct horse battery staple', [parts[0], String(2 ** 30), ...parts.slice(2)].join('$')));
  assert.not.ok(await verifyPassword('correct horse battery staple', [parts[0], '1000', ...parts.slice(2)].join('$')));
});

test('the dummy hash is well-formed and matches no ordinary password', async () => {
  assert.ok(DUMMY_PASSWORD_HASH.startsWith('scrypt$32768$8$1$'));
  assert.not.ok(await verifyPassword('correct horse battery staple', DUMMY_PASSWORD_HASH));
});

test('password policy: 12 to 1024 characters, counted in code points', async () => {
  checkPasswordPolicy('a'.repeat(12));
  checkPasswordPolicy('a'.repeat(1024));
  const short = await rejects(() => checkPasswordPolicy('a'.repeat(11)), 'VALIDATION_ERROR');
  assert.equal(short.details, { field: 'password', issue: 'must be at least 12 characters' });
  const long = await rejects(() => checkPasswordPolicy('a'.repeat(1025)), 'VALIDATION_ERROR');
  assert.is(long.details?.issue, 'must be at most 1024 characters');
  // 6 emoji are 12 UTF-16 units but only 6 characters.
  await rejects(() => checkPasswordPolicy('\u{1F600}'.repeat(6)), 'VALIDATION_ERROR');
  const named = await rejects(() => checkPasswordPolicy(42, 'DIRECTOR_ADMIN_PASSWORD'), 'VALIDATION_ERROR');
  assert.is(named.details?.field, 'DIRECTOR_ADMIN_PASSWORD');
});

test('generated passwords are 24 characters from an unambiguous alphabet and meet the policy', () => {
  const a = generatePassword();
  assert.is(a.length, 24);
  assert.match(a, /^[A-HJ-NP-Za-km-z2-9]{24}$/);
  assert.is.not(a, generatePassword());
  checkPasswordPolicy(a);
});

test.run();
