import type { Logger } from 'pino';
import { Type, type Static, type TSchema } from 'typebox';
import { validateNetworkPolicy, type NetworkPolicy } from '../../policies/network-policy.ts';
import { shortName } from '../../netfilter/names.ts';
import type { NetworkView } from '../../netfilter/readback.ts';
import type { Verdict } from '../../netfilter/verdict.ts';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { Engine } from '../engine/engine.ts';
import { DirectorError, conflict, notFound, unavailable, validationError } from '../../core/errors.ts';
import type { EventSink } from '../events.ts';
import { newId } from '../../core/ids.ts';
import type { Caller } from '../sandbox/manager.ts';
import type { AttachTarget, NetworkAttacher } from '../sandbox/network.ts';
import { checkSchema } from '../../core/validate.ts';
import type { NetworkRecord, NetworkStore } from '../store/networks.ts';
import { AllowAccessSchema, accessPolicy, type AllowAccessRequest } from './allow-access.ts';
import type { Firewall } from './firewall.ts';
import { checkPolicyTest, testPolicy } from './policy-test.ts';
import { allocateSubnet, checkSubnet } from './subnets.ts';
import { upgradeStoredPolicies } from './upgrade.ts';

export const CreateNetworkSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    subnet: Type.Optional(Type.String({ maxLength: 43, description: 'IPv4 CIDR; allocated from DIRECTOR_NETWORK_POOL when absent' })),
    gateway: Type.Optional(Type.String({ maxLength: 39, description: 'Defaults to the first host of the subnet' })),
    enableDNS: Type.Optional(
      Type.Boolean({ description: 'Default true: the Director resolver answers on the gateway (names the policy allows only)' }),
    ),
    internal: Type.Optional(Type.Boolean({ description: 'true: no route out at all (engine-level), whatever a policy allows' })),
    labels: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9._/-]{0,62}$' }), Type.String({ maxLength: 256 }), {
        maxProperties: 32,
        additionalProperties: false,
      }),
    ),
  },
  { additionalProperties: false },
);

export interface NetworkManagerDeps {
  engine: Engine;
  store: NetworkStore;
  firewall: Firewall;
  events: EventSink;
  config: Config;
  clock: Clock;
  logger: Logger;
  /** DNS listeners per network (optional: none in tests that do not need DNS). */
  dns?: { listen(r: NetworkRecord): Promise<void>; close(r: NetworkRecord): Promise<void> };
  /** Removes a sandbox (force delete of a network in use): the sandbox teardown, given by the composition root. */
  destroySandbox: (id: string, reason: string) => Promise<void>;
  /** Ends the warm pools kept on a network and removes their sandboxes (before the network goes); given by the composition root. */
  dropPooled?: (networkId: string) => Promise<void>;
}

const NETWORK_LABELS = (runtime: string, id: string, workspace: string) => ({
  'director.managed': 'true',
  'director.runtime': runtime,
  'director.network': id,
  'director.workspace': workspace,
});

const check = <T>(schema: TSchema, raw: unknown): T => {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw validationError('body', 'must be a JSON object');
  checkSchema(schema, raw);
  return raw as T;
};

/**
 * Networks and their policies: a Docker bridge per network (deterministic bridge name
 * `dir-<short>`, labelled with the record's id) and its chains in Director's nft table. Also
 * the sandboxes' network attacher: `isolated` gives a sandbox a private network whose policy
 * denies all egress.
 */
export class NetworkManager implements NetworkAttacher {
  readonly deps: NetworkManagerDeps;
  constructor(deps: NetworkManagerDeps) {
    this.deps = deps;
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  async create(caller: Caller, raw: unknown): Promise<NetworkRecord> {
    const req = check<Static<typeof CreateNetworkSchema>>(CreateNetworkSchema, raw);
    if (this.deps.store.nameTaken(caller.workspace, req.name))
      throw conflict(`a network named ${req.name} already exists`, { field: 'name' });
    return this.createRecord(
      caller.workspace,
      {
        name: req.name,
        subnet: req.subnet,
        gateway: req.gateway,
        enableDns: req.enableDNS ?? true,
        internal: req.internal ?? false,
        labels: req.labels ?? {},
        privateFor: null,
        policy: null,
      },
      caller,
    );
  }

  private async createRecord(
    workspace: string,
    o: {
      name: string;
      subnet?: string;
      gateway?: string;
      enableDns: boolean;
      internal: boolean;
      labels: Record<string, string>;
      privateFor: string | null;
      policy: NetworkPolicy | null;
    },
    caller?: Caller,
  ): Promise<NetworkRecord> {
    const { store, engine, firewall, clock, config } = this.deps;
    this.deps.firewall.assertReady();
    // Subnets in use: Director's own and every other network on the engine (other instances, Docker's).
    const engineNets = await engine.listNetworks({});
    const taken = [...store.active().map((r) => r.subnet), ...engineNets.map((n) => n.subnet).filter((x): x is string => Boolean(x))];
    let subnet: string;
    let gateway: string;
    if (o.subnet) ({ subnet, gateway } = checkSubnet(o.subnet, o.gateway, taken));
    else {
      if (o.gateway) throw validationError('gateway', 'a gateway needs an explicit subnet');
      const got = allocateSubnet(config.networkPool, o.privateFor ? 28 : 24, taken);
      if (!got) throw new DirectorError('SERVICE_UNAVAILABLE', `no free subnet left in ${config.networkPool}`);
      ({ subnet, gateway } = checkSubnet(got, undefined, []));
    }
    const id = newId('net');
    const short = shortName(id);
    const now = clock.nowMs();
    const rec: NetworkRecord = {
      id,
      workspace,
      name: o.name,
      short,
      bridge: `dir-${short}`,
      subnet,
      gateway,
      enableDns: o.enableDns,
      internal: o.internal,
      isolated: false,
      privateFor: o.privateFor,
      engineId: null,
      policy: o.policy,
      labels: o.labels,
      status: 'creating',
      createdMs: now,
      updatedMs: now,
      deletedMs: null,
    };
    store.insert(rec);
    try {
      // Rules first: the bridge never exists without Director's chains in front of it.
      await firewall.sync(rec);
      rec.engineId = await engine.createNetwork({
        name: `director-${id}`,
        bridgeName: rec.bridge,
        subnet,
        gateway,
        internal: o.internal,
        enableIpMasquerade: true,
        labels: NETWORK_LABELS(config.runtimeName, id, workspace),
      });
      store.update(id, clock.nowMs(), { engineId: rec.engineId });
      if (rec.enableDns) await this.deps.dns?.listen(rec);
      store.update(id, clock.nowMs(), { status: 'ready' });
      rec.status = 'ready';
      if (!o.privateFor)
        this.deps.events.emit({
          type: 'network_created',
          severity: 'info',
          workspace,
          networkId: id,
          actor: caller?.actor ?? null,
          details: { name: o.name, subnet, bridge: rec.bridge },
        });
      return rec;
    } catch (err) {
      this.log.warn({ err, networkId: id }, 'network create failed; cleaning up');
      await this.teardown(rec).catch((e: unknown) =>
        this.log.error({ err: e, networkId: id }, 'cleanup after failed network create failed'),
      );
      store.update(id, clock.nowMs(), { status: 'failed', deletedMs: clock.nowMs() });
      if (err instanceof DirectorError) throw err;
      throw unavailable(`network create failed: ${(err as Error).message}`, err);
    }
  }

  /** Removes the DNS listener, the engine network and the nft chains; each step tolerates "already gone". */
  private async teardown(rec: NetworkRecord): Promise<void> {
    await this.deps.dns?.close(rec);
    await this.deps.engine.removeNetwork(rec.engineId ?? `director-${rec.id}`);
    await this.deps.firewall.remove(rec);
  }

  get(caller: Caller, id: string): NetworkRecord {
    const rec = this.deps.store.get(caller.workspace, id);
    // A sandbox's private (isolated) network belongs to the sandbox, not to API callers.
    if (!rec || rec.status === 'failed' || rec.privateFor) {
      const other = this.deps.store.byId(id);
      if (other && other.workspace !== caller.workspace && !other.privateFor) {
        this.deps.events.emit({
          type: 'cross_workspace_attempt',
          severity: 'high',
          workspace: caller.workspace,
          actor: caller.actor ?? null,
          details: { resource: 'network', id },
        });
      }
      throw notFound('network', id);
    }
    return rec;
  }

  list(caller: Caller, f: { limit: number; offset: number }): { items: NetworkRecord[]; total: number } {
    return this.deps.store.list(caller.workspace, f);
  }

  /** Replaces the network's policy (validated: rules in order, first match wins, none shadowed; default deny) and applies it at once. */
  async applyPolicy(caller: Caller, id: string, raw: unknown): Promise<NetworkRecord> {
    const rec = this.get(caller, id);
    const policy = validateNetworkPolicy(raw);
    return this.setPolicy(rec, policy, caller);
  }

  /**
   * {@link applyPolicy} on the network a sandbox is on: its private network (`isolated`, which
   * API callers cannot name) or a network of the caller's workspace (404 otherwise).
   */
  async applyPolicyFor(caller: Caller, sandbox: { id: string; networkId: string }, raw: unknown): Promise<NetworkRecord> {
    const rec = this.deps.store.get(caller.workspace, sandbox.networkId);
    if (rec && rec.privateFor === sandbox.id && rec.status !== 'failed') return this.setPolicy(rec, validateNetworkPolicy(raw), caller);
    return this.applyPolicy(caller, sandbox.networkId, raw);
  }

  private async setPolicy(rec: NetworkRecord, policy: NetworkPolicy | null, caller?: Caller): Promise<NetworkRecord> {
    const { store, clock, firewall, events } = this.deps;
    const previous = rec.policy;
    store.update(rec.id, clock.nowMs(), { policy });
    const next = { ...rec, policy };
    try {
      await firewall.sync(next);
    } catch (err) {
      store.update(rec.id, clock.nowMs(), { policy: previous });
      throw err;
    }
    events.emit({
      type: 'policy_applied',
      severity: 'info',
      workspace: rec.workspace,
      networkId: rec.id,
      actor: caller?.actor ?? null,
      details: {
        name: policy?.name ?? null,
        mode: policy?.mode ?? null,
        outbound: policy?.outbound.length ?? 0,
        inbound: policy?.inbound.length ?? 0,
      },
    });
    return next;
  }

  /** Drops everything into and out of the network at once, established connections included. */
  async isolate(caller: Caller, id: string, isolated = true): Promise<NetworkRecord> {
    const rec = this.get(caller, id);
    const { store, clock, firewall, events } = this.deps;
    store.update(rec.id, clock.nowMs(), { isolated });
    const next = { ...rec, isolated };
    try {
      await firewall.sync(next);
    } catch (err) {
      store.update(rec.id, clock.nowMs(), { isolated: rec.isolated });
      throw err;
    }
    events.emit({
      type: isolated ? 'network_isolated' : 'network_released',
      severity: isolated ? 'high' : 'info',
      workspace: rec.workspace,
      networkId: rec.id,
      actor: caller.actor ?? null,
      details: {},
    });
    return next;
  }

  /** Allows destinations on top of the policy in force, where they take effect (see `allow-access.ts`). */
  async allowAccess(caller: Caller, id: string, raw: unknown): Promise<NetworkRecord> {
    const rec = this.get(caller, id);
    const req = check<AllowAccessRequest>(AllowAccessSchema, raw);
    if (rec.policy?.review)
      throw conflict(
        'the policy in force is kept from before rules were evaluated in order and needs review: apply a corrected policy first',
        {
          review: rec.policy.review,
        },
      );
    const policy = accessPolicy(rec.policy, req);
    return policy ? this.setPolicy(rec, policy, caller) : rec;
  }

  /** Whether a connection would get through, from the rules read back from the kernel (see `policy-test.ts`). */
  async testPolicy(caller: Caller, id: string, raw: unknown): Promise<Verdict> {
    const rec = this.get(caller, id);
    return testPolicy(this.deps, rec, checkPolicyTest(raw));
  }

  /** Deletes a network; refused (409) while sandboxes use it unless `force`, which removes them first. */
  async delete(caller: Caller, id: string, opts: { force?: boolean } = {}): Promise<void> {
    const rec = this.get(caller, id);
    await this.deleteRecord(rec, opts.force ?? false, caller);
  }

  private async deleteRecord(rec: NetworkRecord, force: boolean, caller?: Caller): Promise<void> {
    const { store, clock, events } = this.deps;
    // Warm sandboxes kept on the network for its requests are nobody's yet: they never hold a delete back.
    const users = store.sandboxesOn(rec.id).filter((s) => s.id !== rec.privateFor && !s.pooled);
    if (users.length && !force) {
      throw conflict(`network ${rec.id} is used by ${users.length} sandbox(es); delete them first or pass force=true`, {
        sandboxes: users.map((u) => u.id),
      });
    }
    await this.deps.dropPooled?.(rec.id);
    for (const u of users) await this.deps.destroySandbox(u.id, `network ${rec.id} deleted`);
    store.update(rec.id, clock.nowMs(), { status: 'deleting' });
    await this.teardown(rec);
    store.update(rec.id, clock.nowMs(), { status: 'deleted', deletedMs: clock.nowMs() });
    store.clearObservations(rec.id);
    if (!rec.privateFor)
      events.emit({
        type: 'network_deleted',
        severity: 'info',
        workspace: rec.workspace,
        networkId: rec.id,
        actor: caller?.actor ?? null,
        details: { forced: users.length > 0 },
      });
  }

  /** The policy actually in force, read back from the kernel (not from the request). */
  async inForce(caller: Caller, id: string): Promise<NetworkView | null> {
    return this.deps.firewall.view(this.get(caller, id));
  }

  // --- NetworkAttacher (sandboxes) ---

  async attach(sandbox: AttachTarget, mode: string, opts: { policy?: unknown } = {}) {
    let rec: NetworkRecord;
    if (mode === 'isolated') {
      const policy =
        opts.policy === undefined
          ? validateNetworkPolicy({
              name: 'isolated',
              description: 'Private network of one sandbox: all egress denied by default',
              inbound: [],
              outbound: [],
              logging: true,
              metrics: true,
              mode: 'enforce',
            })
          : validateNetworkPolicy(opts.policy);
      rec = await this.createRecord(sandbox.workspace, {
        name: `isolated-${sandbox.id}`,
        enableDns: true,
        internal: false,
        labels: {},
        privateFor: sandbox.id,
        policy,
      });
    } else {
      const found = this.deps.store.get(sandbox.workspace, mode);
      if (!found || found.status !== 'ready' || found.privateFor) throw notFound('network', mode);
      rec = found;
    }
    return {
      networkId: rec.id,
      network: {
        mode: 'network' as const,
        network: rec.engineId ?? `director-${rec.id}`,
        ...(rec.enableDns ? { dns: [rec.gateway] } : {}),
      },
    };
  }

  async release(sandbox: AttachTarget & { networkId: string }): Promise<void> {
    const rec = this.deps.store.byId(sandbox.networkId);
    if (rec && rec.privateFor === sandbox.id && rec.status !== 'deleted') await this.deleteRecord(rec, true);
  }

  assertReady(): void {
    this.deps.firewall.assertReady();
  }

  /** Boot: rebuild the table from the store, restart DNS listeners, drop networks whose bridge vanished. */
  async boot(): Promise<void> {
    const { store, engine, clock, firewall } = this.deps;
    upgradeStoredPolicies(this.deps);
    for (const rec of store.active()) {
      if (rec.status === 'creating' || rec.status === 'deleting') {
        await this.teardown(rec).catch(() => undefined);
        store.update(rec.id, clock.nowMs(), { status: rec.status === 'creating' ? 'failed' : 'deleted', deletedMs: clock.nowMs() });
      } else if (!(await engine.inspectNetwork(rec.engineId ?? `director-${rec.id}`))) {
        this.log.warn({ networkId: rec.id }, 'engine network vanished; marking the network failed');
        await firewall.remove(rec).catch(() => undefined);
        store.update(rec.id, clock.nowMs(), { status: 'failed', deletedMs: clock.nowMs() });
      }
    }
    await firewall.boot();
    // Engine networks carrying our labels but no live record are leftovers of a crash.
    const labels = { 'director.managed': 'true', 'director.runtime': this.deps.config.runtimeName };
    for (const n of await engine.listNetworks(labels)) {
      const id = n.labels['director.network'];
      const rec = id ? store.byId(id) : null;
      if (!rec || rec.status === 'deleted' || rec.status === 'failed') await engine.removeNetwork(n.id).catch(() => undefined);
    }
    for (const rec of store.active())
      if (rec.enableDns)
        await this.deps.dns
          ?.listen(rec)
          .catch((err: unknown) => this.log.error({ err, networkId: rec.id }, 'DNS listener failed to start'));
  }
}
