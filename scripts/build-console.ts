/**
 * Builds the web console (console/) into console/dist with esbuild: one JavaScript bundle and
 * one stylesheet with content-hashed names under dist/assets, and dist/index.html pointing at
 * them. The API serves that folder at /console (api/routes/console.ts); it is never committed.
 *
 * Like the sandbox images, the bundle is rebuilt only when its inputs change: the hash of every
 * file under console/ (dist excluded) and sdk/ (the console's types and state lists come from it), this script and the versions of the bundled packages is
 * kept in dist/build.json, and a build with the same hash is skipped. scripts/provision.sh runs
 * this; the console's tests call {@link buildConsole} too, so a checkout that was never
 * provisioned still tests what it serves.
 *
 * Usage: node scripts/build-console.ts [--force]
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
export const CONSOLE_SRC = path.join(root, 'console');
export const CONSOLE_DIST = path.join(CONSOLE_SRC, 'dist');
/** The SDK, whose types the console's are (and whose state lists it bundles): an input too. */
const SDK_SRC = path.join(root, 'sdk');
/** Packages whose code ends up in the bundle, or that make it: their versions are inputs. */
const BUNDLED = ['esbuild', 'preact', '@xterm/xterm', '@xterm/addon-fit'];
/** Browsers the bundle targets (Debian's chromium and current Firefox/Safari). */
const TARGET = ['chrome120', 'firefox120', 'safari17'];

export interface BuildResult {
  built: boolean;
  hash: string;
  dir: string;
  ms: number;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (p === CONSOLE_DIST || name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** The hash of everything the bundle is made from. */
export function inputHash(): string {
  const h = createHash('sha256');
  for (const f of [...filesUnder(CONSOLE_SRC), ...filesUnder(SDK_SRC), fileURLToPath(import.meta.url)]) {
    h.update(path.relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  for (const pkg of BUNDLED) {
    const version = (JSON.parse(readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
    h.update(`${pkg}@${version}\0`);
  }
  return h.digest('hex').slice(0, 16);
}

function builtHash(): string | null {
  try {
    const stamp = JSON.parse(readFileSync(path.join(CONSOLE_DIST, 'build.json'), 'utf8')) as { hash?: unknown };
    return typeof stamp.hash === 'string' && existsSync(path.join(CONSOLE_DIST, 'index.html')) ? stamp.hash : null;
  } catch {
    return null;
  }
}

/** Builds the console unless dist/ already holds a build of the same inputs (or `force`). */
export async function buildConsole(opts: { force?: boolean } = {}): Promise<BuildResult> {
  const started = performance.now();
  const hash = inputHash();
  if (!opts.force && builtHash() === hash) return { built: false, hash, dir: CONSOLE_DIST, ms: performance.now() - started };

  // Built beside dist and swapped in with renames, so a server never reads a half-written build.
  const tmp = `${CONSOLE_DIST}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    const result = await build({
      absWorkingDir: root,
      entryPoints: { app: path.join(CONSOLE_SRC, 'src', 'main.tsx') },
      outdir: path.join(tmp, 'assets'),
      entryNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: TARGET,
      jsx: 'automatic',
      jsxImportSource: 'preact',
      minify: true,
      sourcemap: false,
      legalComments: 'eof',
      metafile: true,
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    const outputs = Object.entries(result.metafile.outputs);
    const asset = (ext: string) => {
      const hit =
        outputs.find(([file, o]) => file.endsWith(ext) && o.entryPoint !== undefined)?.[0] ?? outputs.find(([f]) => f.endsWith(ext))?.[0];
      if (!hit) throw new Error(`the console build produced no ${ext} file`);
      return `/console/assets/${path.basename(hit)}`;
    };
    const template = readFileSync(path.join(CONSOLE_SRC, 'index.html'), 'utf8');
    const html = template.replaceAll('%APP_JS%', asset('.js')).replaceAll('%APP_CSS%', asset('.css'));
    writeFileSync(path.join(tmp, 'index.html'), html);
    writeFileSync(path.join(tmp, 'build.json'), `${JSON.stringify({ hash, builtAt: new Date().toISOString() })}\n`);
    const old = `${CONSOLE_DIST}.old-${randomBytes(4).toString('hex')}`;
    if (existsSync(CONSOLE_DIST)) renameSync(CONSOLE_DIST, old);
    renameSync(tmp, CONSOLE_DIST);
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { built: true, hash, dir: CONSOLE_DIST, ms: performance.now() - started };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  mkdirSync(path.dirname(CONSOLE_DIST), { recursive: true });
  try {
    const r = await buildConsole({ force: process.argv.includes('--force') });
    console.log(
      r.built
        ? `console: built ${path.relative(root, r.dir)} (${r.hash}) in ${Math.round(r.ms)} ms`
        : `console: ${path.relative(root, r.dir)} is up to date (${r.hash})`,
    );
  } catch (err) {
    console.error(`console: build failed: ${(err as Error).message}`);
    process.exit(1);
  }
}
