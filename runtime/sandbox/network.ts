import type { ContainerSpec } from '../engine/engine.ts';
import { validationError } from '../../core/errors.ts';

export interface AttachTarget {
  id: string;
  workspace: string;
}

/**
 * How sandboxes get their network. The network layer (networks + nftables) implements this;
 * without it only `none` is possible.
 */
export interface NetworkAttacher {
  /**
   * Resolves `networkMode` (`isolated` or a network id) into an engine attachment. `opts.policy`
   * is the private network's policy for `isolated` (default: deny everything); validated here.
   */
  attach(
    sandbox: AttachTarget,
    mode: string,
    opts?: { policy?: unknown },
  ): Promise<{ network: ContainerSpec['network']; networkId: string }>;
  /** Called after the container exists (so address-based rules can name it). */
  attached?(sandbox: AttachTarget & { networkId: string; ipAddress: string | null }): Promise<void>;
  /** Undoes `attach` (removes the private network of an `isolated` sandbox). */
  release(sandbox: AttachTarget & { networkId: string }): Promise<void>;
  /** Throws (503) while new sandboxes must be refused: fail closed when enforcement is not in place. */
  assertReady(): void;
}

export const noNetworking: NetworkAttacher = {
  attach: (_s, mode) =>
    Promise.reject(validationError('networkMode', `network mode ${mode} needs the network layer, which is not enabled on this instance`)),
  release: () => Promise.resolve(),
  assertReady: () => undefined,
};
