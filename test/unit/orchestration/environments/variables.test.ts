import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkValue,
  hasCredentials,
  isSecretValue,
  resolveVariables,
  type VariableSpec,
} from '../../../../orchestration/environments/variables.ts';

const d = 'x';
const ok = (spec: VariableSpec, raw: unknown, value: string) => {
  const r = checkValue(spec, raw);
  assert.equal(r, { ok: true, value }, `${spec.kind} ${JSON.stringify(raw)}`);
};
const no = (spec: VariableSpec, raw: unknown, rule: string, message?: RegExp) => {
  const r = checkValue(spec, raw);
  assert.is(r.ok, false, `${spec.kind} ${JSON.stringify(raw)} should be refused`);
  if (!r.ok) {
    assert.is(r.rule, rule, `${spec.kind} ${JSON.stringify(raw)}`);
    if (message) assert.match(r.message, message);
  }
};

test('port: integers 1-65535, as a number or text; anything else names the port rule', () => {
  const port: VariableSpec = { kind: 'port', description: d };
  ok(port, '3000', '3000');
  ok(port, 3000, '3000');
  ok(port, '1', '1');
  ok(port, '65535', '65535');
  ok(port, '08080', '8080');
  for (const bad of ['0', '65536', '99999', 'invalid_port', '30.5', '', ' 80', '-1', '1e3'])
    no(port, bad, 'port', /^must be a port number 1-65535$/);
  no(port, 3000.5, 'port');
  no(port, 0, 'port');
  no(port, true, 'type');
  no(port, null, 'type');
  no(port, {}, 'type');
});

test('integer: whole numbers within minimum and maximum', () => {
  const n: VariableSpec = { kind: 'integer', minimum: 1, maximum: 64, description: d };
  ok(n, '1', '1');
  ok(n, 64, '64');
  ok(n, '+7', '7');
  no(n, '0', 'minimum', /≥ 1 and ≤ 64/);
  no(n, 65, 'maximum');
  no(n, '2.5', 'integer');
  no(n, 'two', 'integer');
  no(n, '99999999999999999', 'integer');
  const free: VariableSpec = { kind: 'integer', description: d };
  ok(free, '-12', '-12');
  no(free, 'abc', 'integer', /^must be an integer$/);
});

test('enum: one of the listed values, case-sensitive', () => {
  const e: VariableSpec = { kind: 'enum', values: ['development', 'production', 'test'], description: d };
  ok(e, 'production', 'production');
  no(e, 'Production', 'enum', /^must be one of development, production, test$/);
  no(e, 'staging', 'enum');
  no(e, 1, 'type');
});

test('uri: RFC 3986 characters and an allowed scheme; placeholders after the scheme pass', () => {
  const u: VariableSpec = { kind: 'uri', schemes: ['postgresql', 'postgres'], description: d };
  ok(u, 'postgresql://user:pass@host:port/db', 'postgresql://user:pass@host:port/db');
  ok(u, 'postgres://db.internal:5432/app?sslmode=require', 'postgres://db.internal:5432/app?sslmode=require');
  ok(u, 'POSTGRESQL://h/db', 'POSTGRESQL://h/db');
  no(u, 'mysql://h/db', 'scheme', /scheme postgresql or postgres/);
  no(u, 'not a uri', 'uri');
  no(u, 'postgresql://h/db with space', 'uri');
  no(u, 'postgresql://h/%zz', 'uri');
  no(u, '//h/db', 'uri');
  no(u, 'postgresql:', 'uri');
});

test('string: minLength, maxLength and an anchored pattern', () => {
  const s: VariableSpec = { kind: 'string', pattern: '^[A-Za-z0-9_+/-]{1,64}$', minLength: 2, maxLength: 10, description: d };
  ok(s, 'UTC', 'UTC');
  no(s, 'U', 'minLength', /at least 2/);
  no(s, 'Europe/Amsterdam', 'maxLength', /at most 10/);
  no(s, 'a b', 'pattern', /must match/);
  no(s, 5, 'type', /must be a string/);
});

test('boolean: true or false, as JSON or text', () => {
  const b: VariableSpec = { kind: 'boolean', description: d };
  ok(b, true, 'true');
  ok(b, 'false', 'false');
  no(b, 'yes', 'boolean', /true or false/);
  no(b, 1, 'type');
});

test('every kind refuses NUL and values over 32768 characters, and no message repeats the value', () => {
  const s: VariableSpec = { kind: 'string', description: d };
  no(s, 'a\u0000b', 'type', /NUL/);
  no(s, 'x'.repeat(32_769), 'maxLength');
  ok(s, 'x'.repeat(32_768), 'x'.repeat(32_768));
  const secretish = 'hunter2-super-secret';
  for (const spec of [
    { kind: 'port', description: d },
    { kind: 'enum', values: ['a'], description: d },
    { kind: 'uri', schemes: ['https'], description: d },
    { kind: 'string', pattern: '^[0-9]+$', description: d },
  ] as VariableSpec[]) {
    const r = checkValue(spec, secretish);
    assert.is(r.ok, false);
    if (!r.ok) assert.not.ok(r.message.includes(secretish), `${spec.kind} message echoes the value`);
  }
});

test('secrets: marked by the template, or any URI carrying credentials', () => {
  assert.ok(hasCredentials('postgresql://user:pass@host:port/db'));
  assert.ok(hasCredentials('https://ghp_token@github.com/org/repo.git'));
  assert.ok(hasCredentials('redis://:password@cache:6379'));
  assert.not.ok(hasCredentials('postgresql://host:5432/db'));
  assert.not.ok(hasCredentials('https://example.test/path?q=a@b'));
  assert.not.ok(hasCredentials('mailto:someone@example.test'));
  assert.not.ok(hasCredentials('plain text with user:pass@host'));
  assert.ok(isSecretValue({ kind: 'string', secret: true, description: d }, 'anything'));
  assert.ok(isSecretValue({ kind: 'string', description: d }, 'https://u:p@h'));
  assert.not.ok(isSecretValue({ kind: 'string', description: d }, 'https://h'));
  assert.ok(isSecretValue(undefined, 'ftp://u:p@h'));
});

const SPECS: Record<string, VariableSpec> = {
  PORT: { kind: 'port', default: '3000', description: d },
  NODE_ENV: { kind: 'enum', values: ['development', 'production'], default: 'development', description: d },
  DATABASE_URL: { kind: 'uri', schemes: ['postgresql'], description: d },
  API_KEY: { kind: 'string', secret: true, required: true, description: d },
};

test('resolveVariables: defaults applied, unknown names and missing required ones refused, secrets found', () => {
  const r = resolveVariables(SPECS, 'web-api', { PORT: 8080, DATABASE_URL: 'postgresql://u:p@h/db', API_KEY: 'k' });
  assert.equal(r.errors, []);
  assert.equal(r.values, { PORT: '8080', NODE_ENV: 'development', DATABASE_URL: 'postgresql://u:p@h/db', API_KEY: 'k' });
  assert.equal([...r.secrets].sort(), ['API_KEY', 'DATABASE_URL']);
  assert.equal([...r.given].sort(), ['API_KEY', 'DATABASE_URL', 'PORT']);

  const bad = resolveVariables(SPECS, 'web-api', { PORT: 'invalid_port', EXTRA: '1' });
  assert.equal(
    bad.errors.map((e) => [e.variable, e.rule]),
    [
      ['EXTRA', 'unknown'],
      ['PORT', 'port'],
      ['API_KEY', 'required'],
    ],
  );
  assert.match(bad.errors[0]!.message, /not a variable of template web-api \(known: PORT, NODE_ENV, DATABASE_URL, API_KEY\)/);
});

test('resolveVariables over an existing environment: unset names keep their values, sealed secrets count as set', () => {
  const r = resolveVariables(SPECS, 'web-api', { NODE_ENV: 'production' }, { values: { PORT: '9000' }, secretsSet: new Set(['API_KEY']) });
  assert.equal(r.errors, []);
  assert.equal(r.values, { PORT: '9000', NODE_ENV: 'production' });
  assert.ok(r.secrets.has('API_KEY'));
  const plainNow = resolveVariables(
    SPECS,
    'web-api',
    { DATABASE_URL: 'postgresql://h/db' },
    { secretsSet: new Set(['API_KEY', 'DATABASE_URL']) },
  );
  assert.not.ok(plainNow.secrets.has('DATABASE_URL'), 'a value given now is judged on its own');
});

test.run();
