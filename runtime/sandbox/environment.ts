import type { SecretBox } from '../../core/secrets.ts';
import type { SandboxStore } from '../store/sandboxes.ts';

const aadOf = (sandboxId: string): string => `sandbox-environment:${sandboxId}`;

/**
 * The environment of sandboxes whose container does not carry it: a sandbox fitted from the
 * warm pool was started before its request existed, so its `environment` is given to every
 * process it runs (execute, the launcher, shells, workflow steps, agent tools) instead.
 * Kept with the record, sealed (values may be secrets: they are never stored in clear), and
 * cached in memory while the sandbox lives. A cold sandbox has its environment in its
 * container's config and nothing here.
 */
export class SandboxEnvironments {
  readonly #store: Pick<SandboxStore, 'setSealedEnvironment' | 'sealedEnvironment'>;
  readonly #box: Pick<SecretBox, 'seal' | 'open'>;
  readonly #cache = new Map<string, Record<string, string>>();

  constructor(store: Pick<SandboxStore, 'setSealedEnvironment' | 'sealedEnvironment'>, box: Pick<SecretBox, 'seal' | 'open'>) {
    this.#store = store;
    this.#box = box;
  }

  /** Keeps `env` for a sandbox whose container lacks it; an empty one is not kept. */
  keep(sandboxId: string, env: Record<string, string>): void {
    if (Object.keys(env).length === 0) return;
    this.#store.setSealedEnvironment(sandboxId, this.#box.seal(JSON.stringify(env), aadOf(sandboxId)));
    this.#cache.set(sandboxId, { ...env });
  }

  /** What every process of the sandbox gets on top of its container's own environment ({} for most). */
  of(sandboxId: string): Record<string, string> {
    const hit = this.#cache.get(sandboxId);
    if (hit) return hit;
    const sealed = this.#store.sealedEnvironment(sandboxId);
    if (sealed === null) {
      this.#cache.set(sandboxId, {});
      return {};
    }
    // A value that cannot be opened (another key, tampering) throws: running without the
    // sandbox's variables would be a silent difference from what was asked.
    const env = JSON.parse(this.#box.open(sealed, aadOf(sandboxId))) as Record<string, string>;
    this.#cache.set(sandboxId, env);
    return env;
  }

  /** The sandbox ended: its cached values go (the sealed copy stays with the record). */
  forget(sandboxId: string): void {
    this.#cache.delete(sandboxId);
  }
}
