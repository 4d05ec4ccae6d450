import { unwrap, type Transport } from '../transport.ts';
import type {
  AllowAccessRequest,
  CreateNetworkRequest,
  NetworkInfo,
  NetworkPolicy,
  Page,
  PolicyInForce,
  PolicyTestRequest,
  PolicyVerdict,
} from '../types.ts';
import { allPages, callOptions, idPath, type CreateOptions } from './request.ts';

/** Operations on a network known by id. */
export class NetworkRef {
  readonly id: string;
  protected readonly t: Transport;

  constructor(t: Transport, id: string) {
    this.t = t;
    this.id = id;
  }

  /** The network with the policy in force read back from the kernel (`info.policyInForce`) and its sandboxes. */
  async get(): Promise<Network> {
    return new Network(this.t, unwrap(await this.t.api.GET('/v1/networks/{id}', idPath(this.id))));
  }

  /** Replaces the network's policy in one atomic transaction; in force when this resolves. */
  async applyPolicy(policy: NetworkPolicy): Promise<Network> {
    return new Network(this.t, unwrap(await this.t.api.POST('/v1/networks/{id}/policies', { ...idPath(this.id), body: policy })));
  }

  /** Allows the destinations on top of the policy in force, placed where they take effect (ahead of the trailing catch-all denies). */
  async allowAccess(destinations: AllowAccessRequest['destinations']): Promise<Network> {
    return new Network(
      this.t,
      unwrap(await this.t.api.POST('/v1/networks/{id}/allow-access', { ...idPath(this.id), body: { destinations } })),
    );
  }

  /**
   * Would this connection get through? The verdict from the network's chains as the kernel holds
   * them now (not the stored request): `verdict`, `passes` (a deny in audit mode passes) and
   * `decidedBy` (a guard, a policy rule, or the default). Sends nothing to the far end.
   */
  async testPolicy(query: PolicyTestRequest): Promise<PolicyVerdict> {
    return unwrap(await this.t.api.POST('/v1/networks/{id}/policy/test', { ...idPath(this.id), body: query }));
  }

  /** Drops everything in and out at once, established connections included, until {@link release}. */
  async isolate(): Promise<Network> {
    return new Network(this.t, unwrap(await this.t.api.POST('/v1/networks/{id}/isolate', idPath(this.id))));
  }

  async release(): Promise<Network> {
    return new Network(this.t, unwrap(await this.t.api.POST('/v1/networks/{id}/release', idPath(this.id))));
  }

  /** Audit mode: the minimal allow policy that would have permitted the traffic observed. */
  async proposal(): Promise<Record<string, unknown>> {
    return unwrap(await this.t.api.GET('/v1/networks/{id}/proposal', idPath(this.id)));
  }

  /** Deletes it; `force` deletes the sandboxes on it first (otherwise 409 while any use it). */
  async delete(opts: { force?: boolean } = {}): Promise<void> {
    unwrap(
      await this.t.api.DELETE('/v1/networks/{id}', {
        params: { path: { id: this.id }, ...(opts.force ? { query: { force: true } } : {}) },
      }),
    );
  }
}

/** A network with its state as of the last answer. */
export class Network extends NetworkRef {
  readonly info: NetworkInfo;

  constructor(t: Transport, info: NetworkInfo) {
    super(t, info.id);
    this.info = info;
  }

  /** The policy in force as the kernel has it, when the answer carried it (get and applyPolicy do). */
  get policyInForce(): PolicyInForce | null {
    return (this.info.policyInForce ?? null) as PolicyInForce | null;
  }

  toJSON(): NetworkInfo {
    return this.info;
  }
}

/** `client.networks`: the Network API. */
export class Networks {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  async create(request: CreateNetworkRequest, opts: CreateOptions = {}): Promise<Network> {
    const res = await this.#t.api.POST('/v1/networks', {
      body: request,
      ...callOptions(opts),
    });
    return new Network(this.#t, unwrap(res));
  }

  async get(id: string): Promise<Network> {
    return this.ref(id).get();
  }

  ref(id: string): NetworkRef {
    return new NetworkRef(this.#t, id);
  }

  async list(query: { limit?: number; offset?: number } = {}): Promise<Page<NetworkInfo>> {
    return unwrap(await this.#t.api.GET('/v1/networks', { params: { query } }));
  }

  /** Every network, page after page. */
  all(query: { limit?: number } = {}): AsyncGenerator<NetworkInfo> {
    return allPages((q) => this.list(q), query);
  }
}
