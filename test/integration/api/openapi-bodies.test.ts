/**
 * The served OpenAPI document says which request bodies may be left out (`requestBody.required`),
 * and what it says is what the server does: every operation with a body is sent without one, and
 * a required body is refused as `body` while an optional one is not. Generated clients (the SDK's
 * types among them) let callers omit exactly the bodies marked optional.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';

const test = suite('openapi-bodies');
let api: TestApi;

interface Operation {
  requestBody?: { required?: boolean; content?: Record<string, { schema?: { type?: string; required?: string[] } }> };
  parameters?: { in: string; name: string; schema?: { pattern?: string } }[];
}
type Doc = { paths: Record<string, Record<string, Operation>> };
let doc: Doc;

const UNLIMITED = 1_000_000;

test.before(async () => {
  // Every operation once, from one user: no rate class may run out.
  api = await startApi({
    networking: 'on',
    rateLimitAuth: UNLIMITED,
    rateLimitSession: UNLIMITED,
    rateLimitSandbox: UNLIMITED,
    rateLimitGeneral: UNLIMITED,
  });
  doc = (await call<Doc>(api.url, 'GET', '/v1/openapi.json')).body;
});
test.after(async () => {
  await api?.close();
});

const bodyRequired = (path: string, method: string): boolean | undefined => doc.paths[path]?.[method]?.requestBody?.required;

test('bodies a route accepts none of are marked optional; bodies it needs stay required', () => {
  for (const [path, method] of [
    ['/v1/auth/refresh', 'post'],
    ['/v1/approvals/{id}/approve', 'post'],
    ['/v1/approvals/{id}/deny', 'post'],
    ['/v1/checkpoints/{id}/restore', 'post'],
    ['/v1/workflows/{id}/start', 'post'],
    ['/v1/monitoring/start', 'post'],
    ['/v1/environments/{id}/validate', 'post'],
  ] as const) {
    assert.is(bodyRequired(path, method), false, `${method} ${path}`);
  }
  for (const [path, method] of [
    ['/v1/auth/login', 'post'],
    ['/v1/sandboxes/{id}/execute', 'post'],
    ['/v1/sessions', 'post'],
    ['/v1/networks/{id}/policies', 'post'],
  ] as const) {
    assert.is(bodyRequired(path, method), true, `${method} ${path}`);
  }
});

test('an action (a POST to a path that has no GET) whose body requires nothing takes none: the seed posts `/monitoring/start` bare', () => {
  const wrong: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    const op = item.post;
    if (!op?.requestBody || item.get) continue;
    const schema = op.requestBody.content?.['application/json']?.schema;
    if (schema?.type !== 'object' || (schema.required ?? []).length > 0) continue;
    if (op.requestBody.required !== false) wrong.push(`POST ${path}`);
  }
  assert.equal(wrong, [], `bodies that require nothing but are marked required: ${wrong.join(', ')}`);
});

/** A value for a path parameter that its pattern accepts (`^ses_[A-Za-z0-9_-]{16}$` -> `ses_AAAAAAAAAAAAAAAA`), for a record that does not exist. */
function fakeId(pattern: string | undefined): string {
  const prefix = /^\^([a-z]+_)/.exec(pattern ?? '')?.[1];
  return prefix ? `${prefix}${'A'.repeat(16)}` : 'missing-record';
}

test('every operation with a body: sent without one, it is refused as `body` exactly when the document says the body is required', async () => {
  const checked: string[] = [];
  const wrong: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!op.requestBody) continue;
      const params = (op.parameters ?? []).filter((p) => p.in === 'path');
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => fakeId(params.find((p) => p.name === name)?.schema?.pattern));
      // No body and no Content-Type: what a client sends when it leaves the body out.
      const res = await call(api.url, method.toUpperCase(), url, { token: api.adminToken });
      const refusedAsBody = res.status === 400 && res.body.error?.details.field === 'body';
      const required = op.requestBody.required !== false;
      if (refusedAsBody !== required) {
        wrong.push(
          `${method.toUpperCase()} ${path}: marked ${required ? 'required' : 'optional'}, answered ${res.status} ${res.text.slice(0, 160)}`,
        );
      }
      checked.push(`${method} ${path}`);
    }
  }
  assert.equal(wrong, [], wrong.join('\n'));
  assert.ok(checked.length > 20, `only ${checked.length} operations with a body`);
});

test.run();
