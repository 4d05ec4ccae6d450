import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkImports, findCycles, importsOf, layerViolation } from '../../../scripts/check-imports.ts';

const root = path.join(path.dirname(new URL(import.meta.url).pathname), '../../..');

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-imports-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

test('the project itself has no layer violation and no value-import cycle', () => {
  assert.equal(checkImports(root), []);
});

test('layers import only leftwards; bench and test import anything; clients import no server layer', () => {
  assert.is(layerViolation('runtime', 'core'), null);
  assert.is(layerViolation('api', 'orchestration'), null);
  assert.is(layerViolation('core', 'core'), null);
  assert.match(layerViolation('netfilter', 'runtime') ?? '', /netfilter\/ may not import runtime\//);
  assert.match(layerViolation('core', 'policies') ?? '', /may not import policies/);
  assert.match(layerViolation('orchestration', 'api') ?? '', /may not import api/);
  assert.is(layerViolation('test', 'api'), null);
  assert.is(layerViolation('bench', 'netfilter'), null);
  assert.match(layerViolation('cli', 'runtime') ?? '', /client/);
  assert.is(layerViolation('cli', 'sdk'), null);
  assert.match(layerViolation('newfolder', 'core') ?? '', /not a known folder/);
});

test('type-only imports are told apart from value imports', () => {
  const edges = importsOf(
    '/r/api/a.ts',
    `import type { A } from './b.ts';\nimport { type C, type D } from './c.ts';\nimport { E, type F } from './d.ts';\nexport { G } from './e.ts';\n`,
  );
  assert.equal(
    edges.map((e) => [path.basename(e.to), e.typeOnly, e.line]),
    [
      ['b.ts', true, 1],
      ['c.ts', true, 2],
      ['d.ts', false, 3],
      ['e.ts', false, 4],
    ],
  );
});

test('cycles are found once each, however long', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
    ['d', ['d']],
    ['e', ['a']],
  ]);
  assert.equal(findCycles(g), [
    ['a', 'b', 'c', 'a'],
    ['d', 'd'],
  ]);
});

test('a deliberate upward import and a value cycle in a tree are both reported with file and line', () => {
  const dir = tree({
    'netfilter/x.ts': `import { y } from '../runtime/y.ts';\nexport const x = y;\n`,
    'runtime/y.ts': `export const y = 1;\n`,
    'api/a.ts': `import { b } from './b.ts';\nexport const a = () => b;\n`,
    'api/b.ts': `import { a } from './a.ts';\nexport const b = () => a;\n`,
    'api/c.ts': `import type { d } from './d.ts';\nexport type c = d;\n`,
    'api/d.ts': `import type { c } from './c.ts';\nexport type d = c | 1;\n`,
  });
  try {
    const problems = checkImports(dir);
    assert.is(problems.length, 2, problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('netfilter/x.ts:1: imports runtime/y.ts')));
    assert.ok(problems.some((p) => p === 'value-import cycle: api/a.ts -> api/b.ts -> api/a.ts'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
