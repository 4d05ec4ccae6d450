/**
 * The README's configuration table, generated from the one settings table (runtime/config.ts).
 * `node scripts/config-doc.ts` prints it; `--write` replaces the table in README.md. A unit test
 * (test/unit/runtime/config-doc.test.ts) fails when README.md's table is not what this prints.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { allSettings } from '../runtime/config.ts';

export const README = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'README.md');
const HEADER = '| Variable | Default | Unit | Meaning |';

/** The Markdown table, one row per setting, in declaration order. */
export function configTable(): string {
  const rows = allSettings().map((s) => {
    const def = s.default === '' ? '(empty)' : `\`${String(s.default)}\``;
    return `| \`${s.env}\` | ${def} | ${s.unit ?? ''} | ${s.description.replace(/\|/g, '\\|')} |`;
  });
  return [HEADER, '|---|---|---|---|', ...rows].join('\n');
}

/** The configuration table as it stands in `markdown` (from its header to the first line that is not a row), or null. */
export function tableIn(markdown: string): string | null {
  const lines = markdown.split('\n');
  const start = lines.indexOf(HEADER);
  if (start === -1) return null;
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  return lines.slice(start, end).join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--write')) {
    const text = readFileSync(README, 'utf8');
    const current = tableIn(text);
    if (current === null) throw new Error(`${README} has no configuration table (a line "${HEADER}")`);
    writeFileSync(
      README,
      text.replace(current, () => configTable()),
    );
    console.log(`config-doc: ${README} updated`);
  } else console.log(configTable());
}
