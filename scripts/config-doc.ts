/** Prints the configuration table for the README from the one config schema (runtime/config.ts). */
import { allSettings } from '../runtime/config.ts';

console.log('| Variable | Default | Unit | Meaning |');
console.log('|---|---|---|---|');
for (const s of allSettings()) {
  const def = s.default === '' ? '(empty)' : `\`${String(s.default)}\``;
  console.log(`| \`${s.env}\` | ${def} | ${s.unit ?? ''} | ${s.description.replace(/\|/g, '\\|')} |`);
}
