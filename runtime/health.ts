import type { Db } from '../core/db.ts';
import type { Engine } from './engine/engine.ts';
import type { Firewall } from './network/firewall.ts';

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

export interface HealthDeps {
  engine: Engine;
  db: Db;
  /** null when the network layer is off. */
  firewall: Pick<Firewall, 'status' | 'verify'> | null;
  nftTable: string;
}

/** Is this runtime able to serve: the engine answers, the store takes writes, Director's nft table is in place. */
export class Health {
  readonly #deps: HealthDeps;

  constructor(deps: HealthDeps) {
    this.#deps = deps;
  }

  /** Readiness: the engine answers, the store takes writes, and every extra probe passes. */
  async readiness(probes: ReadinessProbe[] = []): Promise<{ ready: boolean; checks: Check[] }> {
    const { engine, db } = this.#deps;
    const checks = await Promise.all([
      timed('engine', async () => {
        const info = await engine.ping(AbortSignal.timeout(3000));
        return `${engine.kind} ${info.version} (API ${info.apiVersion}) at ${engine.endpoint}`;
      }),
      timed('store', () => {
        db.checkWritable();
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

  /** The probe of Director's nft table: booted, not tampered with, and verified against the kernel. */
  readonly nftProbe: ReadinessProbe = async () => {
    const { firewall, nftTable } = this.#deps;
    if (!firewall) return { name: 'nft', ok: true, detail: 'network layer off' };
    const s = firewall.status;
    const problems = s.booted && !s.tampered ? await firewall.verify() : ['not in place'];
    return {
      name: 'nft',
      ok: problems.length === 0,
      detail: problems.length ? problems.slice(0, 3).join('; ') : `table inet ${nftTable} in place`,
    };
  };

  /** The firewall's state, or null without the network layer. */
  firewallStatus(): { booted: boolean; tampered: boolean } | null {
    return this.#deps.firewall?.status ?? null;
  }
}
