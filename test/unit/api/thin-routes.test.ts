/**
 * Routes are thin: a route file validates, authorizes, calls a service and shapes the answer.
 * A timer, SQL, an engine call or the wall clock in one is logic without a home below `api/`;
 * and route plugins are given the services they use, never the whole `Runtime`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = path.join(path.dirname(new URL(import.meta.url).pathname), '../../..');
const routeFiles = [
  ...readdirSync(path.join(root, 'api/routes'))
    .filter((n) => n.endsWith('.ts'))
    .map((n) => `api/routes/${n}`),
  'api/ws/terminal.ts',
];

const FORBIDDEN: [string, RegExp][] = [
  ['starts a timer', /\bset(Interval|Timeout|Immediate)\s*\(/],
  ['opens SQL', /\.sql\b|\b(SELECT|INSERT INTO|DELETE FROM)\b|\bUPDATE \w+ SET\b|core\/db\.ts'/],
  ['calls the engine', /\bengine\s*\??\.\s*\w+\s*[(<]|\bnew DockerEngine\b/],
  ['reads the wall clock (inject the clock)', /\bDate\.now\(|\bperformance\.now\(/],
  ['takes the whole Runtime', /import type \{[^}]*\bRuntime\b[^}]*\} from '[^']*runtime\/runtime\.ts'/],
];

/** What a route file does that belongs in a service, one line each. */
function violations(file: string, text: string): string[] {
  return FORBIDDEN.flatMap(([what, re]) => (re.test(text) ? [`${file} ${what}`] : []));
}

test('no route file starts a timer, opens SQL, calls the engine, reads the clock or takes the whole Runtime', () => {
  assert.ok(routeFiles.length >= 9);
  assert.equal(
    routeFiles.flatMap((f) => violations(f, readFileSync(path.join(root, f), 'utf8'))),
    [],
  );
});

test('each kind of violation is caught', () => {
  assert.equal(violations('x.ts', 'const t = setInterval(() => tick(), 5000);'), ['x.ts starts a timer']);
  assert.equal(violations('x.ts', "rt.db.sql.prepare('SELECT 1')"), ['x.ts opens SQL']);
  assert.equal(violations('x.ts', 'await rt.engine.exec(id, opts)'), ['x.ts calls the engine']);
  assert.equal(violations('x.ts', "import type { ExecHandle } from '../../runtime/engine/engine.ts';"), []);
  assert.equal(violations('x.ts', 'const since = Date.now() - 1000;'), ['x.ts reads the wall clock (inject the clock)']);
  assert.equal(violations('x.ts', "import type { Runtime } from '../../runtime/runtime.ts';"), ['x.ts takes the whole Runtime']);
  assert.equal(violations('x.ts', "import type { NetworkLayer } from '../../runtime/runtime.ts';"), []);
});

test.run();
