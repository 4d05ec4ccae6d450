/**
 * The console's API types are the SDK's (derived from the generated OpenAPI types, which a test
 * keeps equal to the served document): the console declares no shape of the API of its own, so
 * none can drift from the server unseen (its typecheck fails where a view reads a changed field).
 */
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RUN_STATES, runHasEnded } from '../../../sdk/states.ts';
import { RUN_STATUSES, runIsOpen } from '../../../console/src/api/types.ts';

const source = readFileSync(new URL('../../../console/src/api/types.ts', import.meta.url), 'utf8');

test('console/src/api/types.ts declares no API shape: every type comes from the SDK', () => {
  assert.match(source, /from '\.\.\/\.\.\/\.\.\/sdk\/types\.ts'/);
  const interfaces = [...source.matchAll(/^export interface (\w+)/gm)].map((m) => m[1]);
  assert.equal(interfaces, [], 'hand-written interfaces');
  // A type alias may rename or narrow an SDK type, never spell out an object or a union of literals.
  const literalTypes = [...source.matchAll(/^export type (\w+)(?:<[^>]*>)? = (?:\{|'|\[)/gm)].map((m) => m[1]);
  assert.equal(literalTypes, [], 'type aliases written out by hand');
});

test('the run states the console filters by and treats as open are the SDK lists', () => {
  assert.is(RUN_STATUSES, RUN_STATES);
  assert.equal(
    RUN_STATES.filter((s) => runIsOpen(s)),
    RUN_STATES.filter((s) => !runHasEnded(s)),
  );
  assert.is(runIsOpen(null), false);
  assert.is(runIsOpen('completed'), false);
  assert.is(runIsOpen('queued'), true);
});

test.run();
