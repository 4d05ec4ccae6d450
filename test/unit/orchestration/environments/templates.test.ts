import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadTemplates, TEMPLATES_DIR } from '../../../../orchestration/environments/template.ts';
import { checkValue } from '../../../../orchestration/environments/variables.ts';

test('every shipped template loads: at least web-api, python, node and shell', () => {
  const all = loadTemplates();
  for (const name of ['web-api', 'python', 'node', 'shell']) assert.ok(all.has(name), `template ${name} is shipped`);
  for (const t of all.values()) {
    assert.ok(Number.isInteger(t.version) && t.version >= 1, `${t.name} has a version`);
    assert.ok(t.description.length > 0);
    assert.ok(Object.keys(t.variables).length > 0, `${t.name} declares variables`);
    for (const [name, spec] of Object.entries(t.variables)) {
      if (spec.default !== undefined)
        assert.equal(checkValue(spec, spec.default), { ok: true, value: spec.default }, `${t.name}.${name} default`);
    }
    for (const f of t.files) assert.ok(f.path.startsWith('/workspace/'), `${t.name}: ${f.path}`);
  }
});

test('the templates the Director Protocol names have the typed variables its example uses', () => {
  const web = loadTemplates().get('web-api')!;
  assert.is(web.variables.PORT?.kind, 'port');
  assert.is(web.variables.NODE_ENV?.kind, 'enum');
  assert.is(web.variables.DATABASE_URL?.kind, 'uri');
  assert.is(web.image, 'director/node:latest', 'web-api needs Node.js and npm');
  assert.is(loadTemplates().get('node')!.image, 'director/node:latest');
  assert.is(loadTemplates().get('python')!.image, 'director/base:latest');
  assert.ok(web.networkPolicy, 'web-api ships a network policy');
  assert.is(web.networkPolicy?.mode, 'enforce', 'the policy was validated and normalized (defaults filled)');
});

/** Loads a directory holding one template file written from `mutate(web-api)`. */
function loadMutated(mutate: (t: Record<string, unknown>) => void, file = 'web-api.json'): () => void {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-templates-'));
  const t = JSON.parse(readFileSync(path.join(TEMPLATES_DIR, 'web-api.json'), 'utf8')) as Record<string, unknown>;
  mutate(t);
  writeFileSync(path.join(dir, file), JSON.stringify(t));
  return () => {
    try {
      loadTemplates(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
type Vars = Record<string, Record<string, unknown>>;

test('a bad template file is a release bug: loading throws, naming the file and the place', () => {
  const cases: [string, (t: Record<string, unknown>) => void, RegExp, string?][] = [
    ['name differs from the file', (t) => (t.name = 'other'), /web-api\.json is invalid at \/name/],
    ['unknown field', (t) => (t.colour = 'red'), /web-api\.json is invalid/],
    ['unknown variable kind', (t) => ((t.variables as Vars).PORT!.kind = 'socket'), /web-api\.json is invalid/],
    [
      'default breaks its own rule',
      (t) => ((t.variables as Vars).PORT!.default = '70000'),
      /\/variables\/PORT\/default: must be a port number/,
    ],
    [
      'secret with a default',
      (t) => ((t.variables as Vars).API_KEY!.default = 'shipped'),
      /\/variables\/API_KEY\/default: a secret variable has no default/,
    ],
    ['pattern that does not compile', (t) => ((t.variables as Vars).API_KEY!.pattern = '^([a-z$'), /\/variables\/API_KEY\/pattern/],
    [
      'network policy that does not validate',
      (t) => ((t.networkPolicy as { outbound: { port: number }[] }).outbound[0]!.port = 70000),
      /\/networkPolicy/,
    ],
    [
      'file outside /workspace',
      (t) => ((t.files as { path: string }[])[0]!.path = '/workspace/../etc/passwd'),
      /\/files\/0\/path: must be a file under \/workspace/,
    ],
    ['resource limit out of range', (t) => ((t.resourceLimits as { memory: number }).memory = 1), /web-api\.json is invalid/],
    ['not JSON', () => undefined, /not valid JSON/, 'web-api.json'],
  ];
  for (const [what, mutate, message] of cases) {
    const load = what === 'not JSON' ? brokenJson() : loadMutated(mutate);
    assert.throws(load, message, what);
  }
});

function brokenJson(): () => void {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-templates-'));
  writeFileSync(path.join(dir, 'web-api.json'), '{ "name": ');
  return () => {
    try {
      loadTemplates(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('adding a template is adding a file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-templates-'));
  try {
    writeFileSync(
      path.join(dir, 'go.json'),
      JSON.stringify({
        name: 'go',
        version: 3,
        description: 'Go toolchain',
        image: 'director/go:latest',
        variables: { GOFLAGS: { kind: 'string', maxLength: 200, description: 'flags' } },
        resourceLimits: { memory: 2048 },
        networkPolicy: null,
        files: [{ path: 'main.go', content: 'package main\n' }],
      }),
    );
    const go = loadTemplates(dir).get('go')!;
    assert.is(go.version, 3);
    assert.is(go.networkPolicy, null);
    assert.equal(go.files, [{ path: '/workspace/main.go', content: 'package main\n', mode: 0o644, encoding: 'utf8' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
