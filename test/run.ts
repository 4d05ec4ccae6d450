/**
 * Test runner: runs every `*.test.ts` under test/unit and/or test/integration, each file in
 * its own Node process (a crash or leaked handle in one file cannot take others down), sums
 * uvu's per-file counts and ends with the line CI reads: `N passed, N failed`.
 *
 * Usage: node test/run.ts [unit|integration|all] [filter-substring ...]
 * A first argument that is none of the three is a filter too (a file's path, say): all sets, filtered.
 * Unit files run in parallel; integration files (real Docker, real nft) run one at a time.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.dirname(new URL(import.meta.url).pathname);
const filters = process.argv.slice(2);
const which = ['unit', 'integration', 'all'].includes(filters[0] ?? '') ? filters.shift()! : 'all';
const FILE_TIMEOUT_MS = Number(process.env.DIRECTOR_TEST_FILE_TIMEOUT_MS ?? 600_000);

function find(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

interface FileResult {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
  output: string;
}

/** Process groups of the files running now (each file leads its own group: see {@link runFile}). */
const running = new Set<number>();
const killGroup = (pid: number) => {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: nothing left in the group.
  }
};
for (const [sig, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const)
  process.on(sig, () => {
    for (const pid of running) killGroup(pid);
    process.exit(code);
  });
// The runner itself failing: the files' groups are not its own, nothing else would stop them.
process.on('exit', () => {
  for (const pid of running) killGroup(pid);
});
/** How long a file's output pipes may stay open after it ended and its group was killed. */
const PIPE_GRACE_MS = 5_000;

function runFile(file: string): Promise<FileResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    // Its own process group: what the file starts (servers, helpers) goes with it, on a timeout and
    // when the file ends; a child left holding its output pipes would otherwise keep `close` (and
    // CI) waiting for ever.
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid!;
    running.add(pid);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n[runner] ${file} exceeded ${FILE_TIMEOUT_MS} ms: killed with its process group\n`;
      killGroup(pid);
    }, FILE_TIMEOUT_MS);
    child.on('exit', () => {
      running.delete(pid);
      killGroup(pid);
      // A process that left the group (setsid, a daemon) and kept the pipes would hold `close`
      // for its whole life: stop reading after a grace period, and say so.
      const grace = setTimeout(() => {
        console.log(`[runner] ${file}: a process outside its group still held its output ${PIPE_GRACE_MS} ms after it ended`);
        output += `\n[runner] stopped reading the output ${PIPE_GRACE_MS} ms after the file ended (a process that left its group holds it)\n`;
        child.stdout.destroy();
        child.stderr.destroy();
      }, PIPE_GRACE_MS);
      child.once('close', () => clearTimeout(grace));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(output)?.[1] ?? 'NaN');
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      // uvu's Total already leaves skipped tests out.
      let failed = Number.isNaN(total) ? 1 : total - passed;
      // A file that exits non-zero after reporting no failure still counts as one failure.
      if (code !== 0 && failed === 0) failed = 1;
      resolve({
        file,
        passed: Number.isNaN(passed) ? 0 : passed,
        failed,
        skipped: Number.isNaN(skipped) ? 0 : skipped,
        ms: Date.now() - started,
        output,
      });
    });
  });
}

async function pool<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const pick = (files: string[]) => (filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files);
const unit = which === 'integration' ? [] : pick(find(path.join(root, 'unit')));
const integration = which === 'unit' ? [] : pick(find(path.join(root, 'integration')));

const report = (r: FileResult) => {
  const rel = path.relative(process.cwd(), r.file);
  const status = r.failed ? 'FAIL' : 'ok  ';
  console.log(`${status} ${rel}  (${r.passed} passed, ${r.failed} failed, ${(r.ms / 1000).toFixed(1)} s)`);
  if (r.failed || process.env.DIRECTOR_TEST_VERBOSE) console.log(r.output.replace(/^/gm, '    '));
  return r;
};

const results: FileResult[] = [];
results.push(...(await pool(unit, 2, async (f) => report(await runFile(f)))));
for (const f of integration) results.push(report(await runFile(f)));

const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
const skipped = results.reduce((a, r) => a + r.skipped, 0);
if (results.length === 0) console.log('no test files matched');
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed > 0 || results.length === 0 ? 1 : 0;
