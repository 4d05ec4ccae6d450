/**
 * Checks the import graph of the project's TypeScript (run by `npm test`):
 *
 * 1. **Layers.** A folder imports only from itself and the folders to its left:
 *    `core` ← `policies` ← `netfilter` ← `runtime` ← `orchestration` ← `api`, and the clients
 *    (`sdk`, `cli`, `console`) only from each other and `core`-free code of their own. `bench`,
 *    `test`, `scripts` and `images` may import anything. Type-only imports count too: a type
 *    from a layer to the right is still knowledge of that layer.
 * 2. **No value-import cycles.** `import type` is erased at run time and cannot make a cycle
 *    that matters; every other import edge can.
 *
 * Prints every violation with the file and the import, and exits 1 when there is one.
 * Usage: node scripts/check-imports.ts [root]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** Left to right: a folder may import from the folders before it in this list. */
export const LAYERS = ['core', 'policies', 'netfilter', 'runtime', 'orchestration', 'api'] as const;
/** Client code talks to Director over HTTP only: it never imports a server layer. */
export const CLIENTS = ['sdk', 'cli', 'console'] as const;
/** Folders that may import anything (they exercise or build the layers). */
export const FREE = ['bench', 'test', 'scripts', 'images', 'bin'] as const;

export interface ImportEdge {
  from: string;
  to: string;
  typeOnly: boolean;
  line: number;
}

const IMPORT_RE = /^\s*(import|export)\s+(type\s+)?([^'";]*?\bfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Relative imports of one file (bare specifiers are packages: not part of the graph). */
export function importsOf(file: string, source: string): ImportEdge[] {
  const out: ImportEdge[] = [];
  for (const m of source.matchAll(IMPORT_RE)) {
    const clause = m[3] ?? '';
    // `import { type A, type B } from` is type-only too when every name is marked `type`.
    const names = /\{([^}]*)\}/.exec(clause)?.[1];
    const allTypeNames =
      names !== undefined &&
      /^\s*\{/.test(clause) &&
      names
        .split(',')
        .filter((n) => n.trim())
        .every((n) => /^\s*type\s/.test(n));
    const typeOnly = Boolean(m[2]) || allTypeNames;
    const line = source.slice(0, m.index).split('\n').length;
    out.push({ from: file, to: path.resolve(path.dirname(file), m[4]!), typeOnly, line });
  }
  return out;
}

/** The top-level folder of a path inside `root`, or null for files at the root. */
export function folderOf(root: string, file: string): string | null {
  const rel = path.relative(root, file);
  const first = rel.split(path.sep)[0]!;
  return rel.includes(path.sep) ? first : null;
}

/** Why `from` may not import `to`, or null when it may. */
export function layerViolation(fromFolder: string | null, toFolder: string | null): string | null {
  if (fromFolder === null || (FREE as readonly string[]).includes(fromFolder)) return null;
  if (toFolder === fromFolder) return null;
  const fi = (LAYERS as readonly string[]).indexOf(fromFolder);
  const ti = toFolder === null ? -1 : (LAYERS as readonly string[]).indexOf(toFolder);
  if ((CLIENTS as readonly string[]).includes(fromFolder)) {
    return toFolder !== null && (CLIENTS as readonly string[]).includes(toFolder)
      ? null
      : `${fromFolder}/ is a client: it may import only sdk/, cli/ or console/`;
  }
  if (fi === -1) return `${fromFolder}/ is not a known folder: add it to a layer in scripts/check-imports.ts`;
  if (ti === -1) return `${fromFolder}/ may not import ${toFolder ?? 'the project root'}/`;
  if (ti > fi) return `${fromFolder}/ may not import ${toFolder}/ (layers import only leftwards: ${LAYERS.join(' ← ')})`;
  return null;
}

/** Every elementary cycle reachable in the value-import graph, each reported once. */
export function findCycles(edges: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      const s = state.get(m);
      if (s === 'open') {
        const cycle = stack.slice(stack.indexOf(m));
        const key = [...cycle].sort().join('|');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push([...cycle, m]);
        }
      } else if (s === undefined) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...edges.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTs(p));
    else if (/\.(ts|mts|tsx)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Checks the tree under `root`; returns the problems found, one line each. */
export function checkImports(root: string): string[] {
  const problems: string[] = [];
  const values = new Map<string, string[]>();
  for (const file of listTs(root)) {
    const rel = (p: string) => path.relative(root, p);
    const edges = importsOf(file, readFileSync(file, 'utf8'));
    values.set(
      file,
      edges.filter((e) => !e.typeOnly).map((e) => e.to),
    );
    for (const e of edges) {
      const why = layerViolation(folderOf(root, file), folderOf(root, e.to));
      if (why) problems.push(`${rel(file)}:${e.line}: imports ${rel(e.to)}: ${why}`);
    }
  }
  for (const c of findCycles(values)) problems.push(`value-import cycle: ${c.map((f) => path.relative(root, f)).join(' -> ')}`);
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..'));
  const problems = checkImports(root);
  for (const p of problems) console.error(`check-imports: ${p}`);
  if (problems.length) {
    console.error(`check-imports: ${problems.length} problem(s)`);
    process.exit(1);
  }
  console.log('check-imports: layers and cycles ok');
}
