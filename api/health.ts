import type { Runtime } from '../runtime/runtime.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail?: string;
  latencyMs: number;
}

/** Extra readiness checks other layers contribute (the nft table, say). */
export type ReadinessProbe = () => Promise<Omit<Check, 'latencyMs'>>;

async function timed(name: string, fn: () => Promise<string | undefined> | string | undefined): Promise<Check> {
  const t0 = performance.now();
  try {
    const detail = await fn();
    return { name, ok: true, ...(detail ? { detail } : {}), latencyMs: Math.round(performance.now() - t0) };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message, latencyMs: Math.round(performance.now() - t0) };
  }
}

/** Readiness: the engine answers, the store takes writes, and every extra probe passes. */
export async function readiness(rt: Runtime, probes: ReadinessProbe[] = []): Promise<{ ready: boolean; checks: Check[] }> {
  const checks = await Promise.all([
    timed('engine', async () => {
      const info = await rt.engine.ping(AbortSignal.timeout(3000));
      return `${rt.engine.kind} ${info.version} (API ${info.apiVersion}) at ${rt.engine.endpoint}`;
    }),
    timed('store', () => {
      rt.db.checkWritable();
      return undefined;
    }),
    ...probes.map(async (p, i) => {
      let name = `probe${i}`;
      const c = await timed(name, async () => {
        const r = await p();
        name = r.name;
        if (!r.ok) throw new Error(r.detail ?? `${r.name} failed`);
        return r.detail;
      });
      return { ...c, name };
    }),
  ]);
  return { ready: checks.every((c) => c.ok), checks };
}
