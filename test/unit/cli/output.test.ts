import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NotFoundError, ValidationError } from '../../../sdk/index.ts';
import { CliError, UsageError, describeError } from '../../../cli/errors.ts';
import { age, cell, duration, fields, serialize, streamItem, table } from '../../../cli/output.ts';

test('tables: upper-case headers, aligned columns, - for nothing, no trailing spaces', () => {
  const out = table(
    [
      { id: 'sbx_1', name: 'a', tags: ['x', 'y'] },
      { id: 'sbx_22', name: null, tags: [] },
    ],
    [
      { header: 'id', value: (r) => r.id },
      { header: 'name', value: (r) => r.name },
      { header: 'tags', value: (r) => r.tags },
    ],
  );
  assert.is(out, 'ID       NAME   TAGS\nsbx_1    a      x,y\nsbx_22   -      -\n');
});

test('cells: objects as compact JSON, whitespace folded so a row stays one line', () => {
  assert.is(cell({ a: 1 }), '{"a":1}');
  assert.is(cell('two\nlines'), 'two lines');
  assert.is(cell(false), 'false');
  assert.is(cell(undefined), '-');
  assert.is(
    fields([
      ['ID', 'x'],
      ['Long label', 3],
    ]),
    'ID           x\nLong label   3\n',
  );
});

test('json and yaml print the data itself; streams print one JSON line or one YAML document per item', () => {
  assert.is(serialize('json', { a: [1] }), '{\n  "a": [\n    1\n  ]\n}\n');
  assert.is(serialize('yaml', { a: [1], b: 'x' }), 'a:\n  - 1\nb: x\n');
  assert.is(
    streamItem('json', { a: 1 }, () => 'row'),
    '{"a":1}\n',
  );
  assert.is(
    streamItem('yaml', { a: 1 }, () => 'row'),
    '---\na: 1\n',
  );
  assert.is(
    streamItem('table', { a: 1 }, () => 'row'),
    'row\n',
  );
});

test('ages as kubectl shows them', () => {
  const now = Date.parse('2026-01-02T00:00:00Z');
  assert.is(age('2026-01-01T23:59:30Z', now), '30s');
  assert.is(age('2026-01-01T23:00:00Z', now), '60m');
  assert.is(age('2026-01-01T00:00:00Z', now), '24h');
  assert.is(age('2025-12-01T00:00:00Z', now), '32d');
  assert.is(age(null, now), '-');
});

test('durations in one human format everywhere: ms below a second, s with a tenth below a minute, then min, h, d', () => {
  const cases: [number | null | undefined, string][] = [
    [null, '-'],
    [undefined, '-'],
    [0, '0ms'],
    [30, '30ms'],
    [999.4, '999ms'],
    [1000, '1.0s'],
    [1200, '1.2s'],
    [59_940, '59.9s'],
    [59_960, '1min'],
    [60_000, '1min'],
    [303_000, '5min 3s'],
    [300_000, '5min'],
    [3_600_000, '1h'],
    [7_500_000, '2h 5min'],
    [86_400_000, '1d'],
    [93_600_000, '1d 2h'],
  ];
  for (const [ms, text] of cases) assert.is(duration(ms), text, String(ms));
});

test('errors print as one line with the code; API errors exit 1, usage errors 2', () => {
  const api = new NotFoundError({ code: 'NOT_FOUND', message: 'sandbox sbx_x\nnot found', status: 404, requestId: 'req_1' });
  assert.equal(describeError(api), { line: 'error: NOT_FOUND: sandbox sbx_x not found (request req_1)', exitCode: 1 });
  const v = new ValidationError({ code: 'VALIDATION_ERROR', message: 'Invalid image: bad', status: 400 });
  assert.equal(describeError(v), { line: 'error: VALIDATION_ERROR: Invalid image: bad', exitCode: 1 });
  assert.equal(describeError(new UsageError('--memory must be a positive integer')), {
    line: 'error: --memory must be a positive integer',
    exitCode: 2,
  });
  assert.equal(describeError(new CliError('AUDIT_CHAIN_BROKEN', 'broken at seq 4')), {
    line: 'error: AUDIT_CHAIN_BROKEN: broken at seq 4',
    exitCode: 1,
  });
  const fs = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: 'ENOENT' });
  assert.equal(describeError(fs), { line: "error: ENOENT: ENOENT: no such file or directory, open 'x'", exitCode: 1 });
});

test.run();
