/**
 * Secrets at rest: AES-256-GCM with one key per Director instance, for environment secrets and
 * (later) the credential vault. The key comes from `DIRECTOR_SECRETS_KEY` (32 bytes, base64 or
 * base64url) or, when that is empty, from `secrets.key` in the data dir, generated once (mode
 * 0600) and kept: losing it makes every stored secret unreadable, so back it up with the store.
 *
 * A sealed value is text: `v1.<key id>.<iv>.<ciphertext+tag>` (base64url parts). The key id (8
 * hex digits derived from the key) tells "sealed with another key" apart from tampering; the
 * additional data (`aad`, e.g. the record id) binds a sealed value to its record, so a value
 * copied to another record does not open there. Plaintext never leaves this module except as
 * the return value of {@link SecretBox.open}.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';

export const SECRETS_KEY_FILE = 'secrets.key';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';

/** A sealed value could not be opened: sealed with another key, malformed or tampered with. */
export class SecretError extends Error {
  readonly reason: 'other_key' | 'malformed' | 'tampered';
  constructor(reason: SecretError['reason'], message: string) {
    super(message);
    this.name = 'SecretError';
    this.reason = reason;
  }
}

/** The key as given in a setting: base64 or base64url, exactly 32 bytes. Throws naming the setting. */
export function parseSecretsKey(text: string, what = 'DIRECTOR_SECRETS_KEY'): Buffer {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/=_-]+$/.test(t)) throw new Error(`${what} is not base64`);
  const key = Buffer.from(t.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
  if (key.length !== KEY_BYTES) throw new Error(`${what} must decode to ${KEY_BYTES} bytes (it decodes to ${key.length})`);
  return key;
}

/**
 * The key file in `dataDir`, created once when missing: written to a temporary file (0600,
 * fsync'd) and hard-linked into place, so two processes starting together agree on one key and
 * no reader ever sees a half-written file. A key file readable by others is tightened to 0600.
 */
export function loadOrCreateKeyFile(dataDir: string): Buffer {
  const file = path.join(dataDir, SECRETS_KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    return readKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${randomBytes(KEY_BYTES).toString('base64url')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
  } catch (err) {
    // Someone else created it first: theirs is the key.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  const dirFd = openSync(dataDir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
  return readKeyFile(file);
}

function readKeyFile(file: string): Buffer {
  const text = readFileSync(file, 'utf8');
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return parseSecretsKey(text, file);
}

/** Seals and opens secrets with one key. Holds the key; never logs or returns it. */
export class SecretBox {
  readonly #key: Buffer;
  /** 8 hex digits naming the key (not secret: derived one-way from it). */
  readonly keyId: string;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`a secrets key is ${KEY_BYTES} bytes`);
    this.#key = Buffer.from(key);
    this.keyId = createHash('sha256').update('director secrets key id\n').update(key).digest('hex').slice(0, 8);
  }

  /** The box for a configuration: `DIRECTOR_SECRETS_KEY` when set, else the data dir's key file. */
  static fromConfig(cfg: { secretsKey: string; dataDir: string }): SecretBox {
    return new SecretBox(cfg.secretsKey ? parseSecretsKey(cfg.secretsKey) : loadOrCreateKeyFile(cfg.dataDir));
  }

  /** Encrypts `plaintext` bound to `aad` (e.g. the record id); a fresh random IV each time. */
  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${FORMAT}.${this.keyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** Decrypts what {@link seal} made with the same key and `aad`; throws a {@link SecretError} otherwise. */
  open(sealed: string, aad: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== FORMAT) throw new SecretError('malformed', 'sealed secret has an unknown format');
    const [, kid, ivText, bodyText] = parts as [string, string, string, string];
    if (kid !== this.keyId) {
      throw new SecretError(
        'other_key',
        `secret was sealed with another key (${kid}, this key is ${this.keyId}): was DIRECTOR_SECRETS_KEY changed?`,
      );
    }
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new SecretError('malformed', 'sealed secret is truncated');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretError('tampered', 'sealed secret failed authentication (altered, or moved from another record)');
    }
  }

  /** Seals a JSON value. */
  sealJson(value: unknown, aad: string): string {
    return this.seal(JSON.stringify(value), aad);
  }

  openJson<T>(sealed: string, aad: string): T {
    return JSON.parse(this.open(sealed, aad)) as T;
  }

  /** Keeps the key out of logs and `util.inspect`. */
  toJSON(): Record<string, string> {
    return { keyId: this.keyId };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SecretBox { keyId: '${this.keyId}' }`;
  }
}
