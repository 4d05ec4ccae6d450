/** Percentiles and table printing shared by the benchmarks. */
export interface Summary {
  n: number;
  ok: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

export function summarize(samples: number[], attempted = samples.length): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : Number.NaN);
  return { n: attempted, ok: samples.length, p50: q(50), p95: q(95), p99: q(99), mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) };
}

const f = (ms: number) => (Number.isNaN(ms) ? '   n/a' : ms.toFixed(1).padStart(7));

export function printTable(title: string, rows: Array<[string, Summary, Summary | null]>): void {
  console.log(`\n${title}`);
  console.log(
    `${'case'.padEnd(44)} ${'p50 ms'.padStart(7)} ${'p95 ms'.padStart(7)} ${'p99 ms'.padStart(7)}  ${'success'.padStart(9)}  ratio p50 vs floor`,
  );
  for (const [name, s, floor] of rows) {
    const ratio = floor ? (s.p50 / floor.p50).toFixed(3) : '-';
    console.log(`${name.padEnd(44)} ${f(s.p50)} ${f(s.p95)} ${f(s.p99)}  ${`${s.ok}/${s.n}`.padStart(9)}  ${ratio}`);
  }
}

export async function timeIt<T>(fn: () => Promise<T>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
