import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadOrCreateKeyFile, parseSecretsKey, SecretBox, SecretError, SECRETS_KEY_FILE } from '../../../core/secrets.ts';

const withDir = (fn: (dir: string) => void) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-secrets-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

const openError = (fn: () => unknown): SecretError => {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SecretError);
    return err as SecretError;
  }
  throw new Error('expected open to fail');
};

test('seal and open round-trip; the sealed text holds no plaintext and differs every time', () => {
  const box = new SecretBox(randomBytes(32));
  const plain = 'postgresql://user:pass@host:port/db';
  const a = box.seal(plain, 'environment:env_1');
  const b = box.seal(plain, 'environment:env_1');
  assert.is.not(a, b, 'a fresh IV per seal');
  assert.not.ok(a.includes('pass'), 'no plaintext in the sealed text');
  assert.match(a, new RegExp(`^v1\\.${box.keyId}\\.`));
  assert.is(box.open(a, 'environment:env_1'), plain);
  assert.equal(box.openJson(box.sealJson({ K: 'v' }, 'x'), 'x'), { K: 'v' });
  assert.is(box.open(box.seal('', 'x'), 'x'), '');
});

test('tampering is detected: a changed byte, another record, another key, a truncated or foreign format', () => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal('s3cret', 'environment:env_1');
  const [v, kid, iv, body] = sealed.split('.') as [string, string, string, string];
  const bytes = Buffer.from(body, 'base64url');
  bytes[0]! ^= 0x01;
  assert.is(openError(() => box.open([v, kid, iv, bytes.toString('base64url')].join('.'), 'environment:env_1')).reason, 'tampered');
  const tag = Buffer.from(body, 'base64url');
  tag[tag.length - 1]! ^= 0x80;
  assert.is(openError(() => box.open([v, kid, iv, tag.toString('base64url')].join('.'), 'environment:env_1')).reason, 'tampered');
  assert.is(openError(() => box.open(sealed, 'environment:env_2')).reason, 'tampered', 'moved to another record');
  const other = new SecretBox(randomBytes(32));
  const e = openError(() => other.open(sealed, 'environment:env_1'));
  assert.is(e.reason, 'other_key');
  assert.match(e.message, /DIRECTOR_SECRETS_KEY/);
  assert.is(openError(() => box.open(`${v}.${kid}.${iv}.AAAA`, 'environment:env_1')).reason, 'malformed');
  assert.is(openError(() => box.open('v2.x.y.z', 'environment:env_1')).reason, 'malformed');
  assert.is(openError(() => box.open('s3cret', 'environment:env_1')).reason, 'malformed');
});

test('the key file is generated once with mode 0600 and reused', () => {
  withDir((dir) => {
    const data = path.join(dir, 'data');
    const k1 = loadOrCreateKeyFile(data);
    const file = path.join(data, SECRETS_KEY_FILE);
    assert.is(statSync(file).mode & 0o777, 0o600);
    assert.is(statSync(data).mode & 0o777, 0o700);
    assert.is(k1.length, 32);
    const k2 = loadOrCreateKeyFile(data);
    assert.ok(k1.equals(k2), 'the second start reads the same key');
    const sealed = new SecretBox(k1).seal('v', 'a');
    assert.is(SecretBox.fromConfig({ secretsKey: '', dataDir: data }).open(sealed, 'a'), 'v', 'a restart opens what was sealed');
    chmodSync(file, 0o644);
    loadOrCreateKeyFile(data);
    assert.is(statSync(file).mode & 0o777, 0o600, 'a key file readable by others is tightened');
  });
});

test('a key file that is not 32 bytes of base64 stops the start, naming the file', () => {
  withDir((dir) => {
    writeFileSync(path.join(dir, SECRETS_KEY_FILE), 'c2hvcnQ=\n', { mode: 0o600 });
    assert.throws(() => loadOrCreateKeyFile(dir), /secrets\.key must decode to 32 bytes/);
  });
});

test('DIRECTOR_SECRETS_KEY wins over the key file and is read as base64 or base64url', () => {
  withDir((dir) => {
    const key = randomBytes(32);
    const box = SecretBox.fromConfig({ secretsKey: key.toString('base64'), dataDir: dir });
    assert.is(SecretBox.fromConfig({ secretsKey: key.toString('base64url'), dataDir: dir }).keyId, box.keyId);
    assert.is(new SecretBox(key).keyId, box.keyId);
    assert.throws(() => readFileSync(path.join(dir, SECRETS_KEY_FILE)), /ENOENT/, 'no key file is written when the setting is given');
    assert.throws(
      () => parseSecretsKey(randomBytes(16).toString('base64')),
      /DIRECTOR_SECRETS_KEY must decode to 32 bytes \(it decodes to 16\)/,
    );
    assert.throws(() => parseSecretsKey('not base64!'), /not base64/);
  });
});

test('the box never shows its key in JSON or inspect output', () => {
  const key = randomBytes(32);
  const box = new SecretBox(key);
  const shown = JSON.stringify(box) + inspect(box, { showHidden: true, depth: 5 });
  for (const enc of ['hex', 'base64', 'base64url'] as const) assert.not.ok(shown.includes(key.toString(enc)), enc);
});

test.run();
