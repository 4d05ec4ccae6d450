/**
 * The SDK's committed types match what a real server serves: the OpenAPI document is fetched
 * from a running server (networking on, so every route is registered) and generated again. When
 * this fails, a route changed: run `npm run sdk:generate` and commit the result.
 */
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GENERATED_FILE, fetchDocument, firstDifference, generateTypes } from '../../../scripts/sdk-generate.ts';
import { startApi, type TestApi } from '../../helpers/api.ts';

const test = suite('sdk-drift');
let api: TestApi;

test.before(async () => {
  api = await startApi({ networking: 'on' });
});
test.after(async () => {
  await api?.close();
});

test('the committed SDK types are what the served OpenAPI document generates', async () => {
  const doc = await fetchDocument(api.url);
  const paths = Object.keys(doc.paths as Record<string, unknown>);
  assert.ok(paths.includes('/v1/networks/{id}/policies') && paths.includes('/v1/sandboxes/{id}/execute'), 'a route area is missing');
  const fresh = await generateTypes(doc);
  const committed = readFileSync(GENERATED_FILE, 'utf8');
  if (committed !== fresh) {
    assert.unreachable(
      `sdk/generated/openapi.ts is out of date: run \`npm run sdk:generate\` and commit it.\n${firstDifference(committed, fresh)}`,
    );
  }
});

test.run();
