/**
 * One settings table: README.md's configuration table is the one `scripts/config-doc.ts`
 * generates from runtime/config.ts, and no server code reads a `DIRECTOR_*` variable that is
 * not in it (nor the environment at all, but the config loader and the engine endpoint).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allSettings } from '../../../runtime/config.ts';
import { configTable, README, tableIn } from '../../../scripts/config-doc.ts';

const root = path.join(path.dirname(new URL(import.meta.url).pathname), '../../..');
/** The server's layers (scripts/check-imports.ts LAYERS); orchestration/ once it exists. */
const SERVER = ['core', 'policies', 'netfilter', 'runtime', 'orchestration', 'api'];
/** `DIRECTOR_*` names in server code that are not operator settings, and why. */
const NOT_SETTINGS: Record<string, string> = {
  DIRECTOR_EXEC_ID: 'a marker Director sets in the environment of processes it starts inside a sandbox',
  DIRECTOR_WORKFLOW_ATTEMPT: 'the attempt number Director sets in the environment of a workflow step inside a sandbox',
  DIRECTOR_LLM_: 'comments naming the DIRECTOR_LLM_* settings as a group',
};
/** The only server files that may read `process.env`: the settings loader, and the engine endpoint (DOCKER_HOST...). */
const ENV_READERS = ['runtime/config.ts', 'runtime/engine/docker/connect.ts'];

function sources(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : n.endsWith('.ts') ? [p] : [];
  });
}

test("README.md's configuration table is the one generated from runtime/config.ts", () => {
  const table = tableIn(readFileSync(README, 'utf8'));
  assert.ok(table, 'README.md has a configuration table');
  assert.fixture(table, configTable(), 'README.md drifted from runtime/config.ts: run `node scripts/config-doc.ts --write`');
});

test('a drifted table is told apart: a row missing, changed or added', () => {
  const table = configTable();
  const rows = table.split('\n');
  assert.is.not(tableIn(`# x\n\n${rows.slice(0, -1).join('\n')}\n\nmore`), table);
  assert.is.not(tableIn(`${table.replace('`8080`', '`8081`')}\n`), table);
  assert.is.not(tableIn(`${table}\n| \`DIRECTOR_EXTRA\` | | | extra |\n`), table);
  assert.is(tableIn(`intro\n\n${table}\n\nAlso honoured: ...`), table);
});

test('server code names no DIRECTOR_* variable outside the settings table', () => {
  const settings = new Set(allSettings().map((s) => s.env));
  const stray: string[] = [];
  for (const file of SERVER.flatMap((d) => sources(path.join(root, d)))) {
    for (const name of readFileSync(file, 'utf8').match(/DIRECTOR_[A-Z0-9_]+/g) ?? []) {
      if (!settings.has(name) && !(name in NOT_SETTINGS)) stray.push(`${path.relative(root, file)}: ${name}`);
    }
  }
  assert.equal(stray, [], 'declare the variable in runtime/config.ts SETTINGS (and run node scripts/config-doc.ts --write)');
});

test('only the settings loader and the engine endpoint read the environment', () => {
  const readers = SERVER.flatMap((d) => sources(path.join(root, d)))
    .filter((f) => /process\.env\b/.test(readFileSync(f, 'utf8')))
    .map((f) => path.relative(root, f));
  assert.equal(readers.sort(), [...ENV_READERS].sort());
});

test.run();
