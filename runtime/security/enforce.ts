import type { NetworkPolicy } from '../../policies/network-policy.ts';
import type { ProfileConstraints } from '../../policies/profiles.ts';
import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';
import { conflict, notFound, unavailable, validationError } from '../../core/errors.ts';
import type { Config } from '../config.ts';
import type { Engine } from '../engine/engine.ts';
import type { EventSink } from '../events.ts';
import type { NetworkManager } from '../network/manager.ts';
import { engineCall } from '../sandbox/engine-call.ts';
import type { Caller, SandboxManager } from '../sandbox/manager.ts';
import type { SandboxTeardown } from '../sandbox/teardown.ts';
import type { NetworkStore } from '../store/networks.ts';
import type { SandboxRecord, SandboxStore } from '../store/sandboxes.ts';
import type { ProfileService, SecurityProfile } from './profiles.ts';

/**
 * `POST /security/policies/{policyId}/enforce`: applies a security profile to running sandboxes
 * now, or a shipped network policy to a network. For a profile, each sandbox is brought under
 * it as far as the kernel allows live:
 * - `maxProcesses` below the sandbox's pids limit: lowered in place (engine `updateLimits`);
 * - `allowExec: false`: stored on the record, so every later execute is refused;
 * - what cannot change in a running container — network taken away, filesystem taken away,
 *   root made read-only, a lower RLIMIT_NOFILE — means the sandbox cannot comply: it is stopped.
 */
export interface EnforceScope {
  sandboxId?: string;
  networkId?: string;
  sessionId?: string;
}

export type ChangeAction = 'updated_live' | 'recorded' | 'requires_stop';

export interface SandboxChange {
  field: string;
  from: unknown;
  to: unknown;
  action: ChangeAction;
}

export interface SandboxEnforcement {
  sandboxId: string;
  changes: SandboxChange[];
  stopped: boolean;
}

export interface EnforceResult {
  policyId: string;
  kind: 'profile' | 'network_policy';
  name: string;
  sandboxes: SandboxEnforcement[];
  networks: { networkId: string; applied: boolean; policy: string }[];
  /** The session named in the scope, and the running sandboxes of it the policy reached. */
  sessions: { sessionId: string; applied: true; sandboxIds: string[] }[];
}

/**
 * The sandboxes of a session of the caller's workspace (any state; 404 for an unknown session or
 * another workspace's). Sessions belong to the orchestration layer, which passes this in.
 */
export type SessionSandboxLookup = (sessionId: string) => readonly SandboxRecord[];

/** What bringing `rec` under `c` takes (pure). `nofileDefault` is the operator's DIRECTOR_NOFILE. */
export function planEnforcement(
  rec: Pick<SandboxRecord, 'spec'>,
  c: ProfileConstraints,
  nofileDefault: number,
  canUpdateLive: boolean,
): SandboxChange[] {
  const sp = rec.spec.securityPolicy;
  const out: SandboxChange[] = [];
  const pids = rec.spec.resourceLimits.pids;
  if (pids > c.maxProcesses)
    out.push({ field: 'resourceLimits.pids', from: pids, to: c.maxProcesses, action: canUpdateLive ? 'updated_live' : 'requires_stop' });
  if (sp.allowExec && !c.allowExec) out.push({ field: 'securityPolicy.allowExec', from: true, to: false, action: 'recorded' });
  if (sp.allowNetwork && !c.allowNetwork)
    out.push({ field: 'securityPolicy.allowNetwork', from: true, to: false, action: 'requires_stop' });
  if (sp.allowFilesystem && !c.allowFilesystem)
    out.push({ field: 'securityPolicy.allowFilesystem', from: true, to: false, action: 'requires_stop' });
  if (!sp.readOnlyRoot && c.readOnlyRoot)
    out.push({ field: 'securityPolicy.readOnlyRoot', from: false, to: true, action: 'requires_stop' });
  const nofile = rec.spec.nofile ?? nofileDefault;
  const maxNofile = Math.min(c.maxOpenFiles, nofileDefault);
  if (nofile > maxNofile) out.push({ field: 'nofile', from: nofile, to: maxNofile, action: 'requires_stop' });
  return out;
}

export interface EnforcerDeps {
  sandboxes: Pick<SandboxManager, 'get'>;
  store: Pick<SandboxStore, 'get'>;
  teardown: Pick<SandboxTeardown, 'stop'>;
  /** null when networking is off. */
  networks: { manager: Pick<NetworkManager, 'get' | 'applyPolicy' | 'applyPolicyFor'>; store: Pick<NetworkStore, 'sandboxesOn'> } | null;
  db: Db;
  clock: Clock;
  events: EventSink;
  engine: Engine;
  config: Pick<Config, 'nofile'>;
  profiles: ProfileService;
  networkPolicies: ReadonlyMap<string, NetworkPolicy>;
}

export class Enforcer {
  readonly #deps: EnforcerDeps;
  constructor(deps: EnforcerDeps) {
    this.#deps = deps;
  }

  /**
   * `sessionSandboxes` resolves `scope.sessionId` (the orchestration layer's sessions); without it
   * a named session is unknown here (404). A session's running sandboxes are in scope: a profile
   * applies to each, a network policy to each one's network.
   */
  async enforce(caller: Caller, policyId: string, scope: EnforceScope, sessionSandboxes?: SessionSandboxLookup): Promise<EnforceResult> {
    if (!scope.sandboxId && !scope.networkId && !scope.sessionId)
      throw validationError('scope', 'name at least one of sandboxId, networkId, sessionId');
    let ofSession: SandboxRecord[] = [];
    if (scope.sessionId) {
      if (!sessionSandboxes) throw notFound('session', scope.sessionId);
      ofSession = sessionSandboxes(scope.sessionId).filter((r) => r.status === 'running' && r.workspace === caller.workspace);
    }
    const sessions = scope.sessionId
      ? [{ sessionId: scope.sessionId, applied: true as const, sandboxIds: ofSession.map((r) => r.id) }]
      : [];
    if (policyId.startsWith('prf_')) {
      const profile = this.#deps.profiles.get(caller.workspace, policyId);
      const targets = new Map(this.#targets(caller, scope).map((r) => [r.id, r]));
      for (const rec of ofSession) if (!targets.has(rec.id)) targets.set(rec.id, rec);
      const sandboxes: SandboxEnforcement[] = [];
      for (const rec of targets.values()) sandboxes.push(await this.#applyProfile(caller, rec, profile));
      return { policyId, kind: 'profile', name: profile.name, sandboxes, networks: [], sessions };
    }
    const policy = this.#deps.networkPolicies.get(policyId);
    if (!policy) throw notFound('policy', policyId);
    const networks = this.#deps.networks;
    // Network id → the sandbox it was reached through (its private network is named only that way), or null.
    const targets = new Map<string, { id: string; networkId: string } | null>();
    if (scope.networkId) targets.set(scope.networkId, null);
    if (scope.sandboxId) {
      const rec = this.#deps.sandboxes.get(caller, scope.sandboxId);
      if (!rec.networkId)
        throw validationError('scope.sandboxId', 'the sandbox has no network (networkMode none); a network policy cannot apply to it');
      if (!targets.has(rec.networkId)) targets.set(rec.networkId, { id: rec.id, networkId: rec.networkId });
    }
    // A session's sandboxes without a network (networkMode none) have nothing a network policy could reach.
    for (const rec of ofSession)
      if (rec.networkId && !targets.has(rec.networkId)) targets.set(rec.networkId, { id: rec.id, networkId: rec.networkId });
    if (targets.size && !networks) throw unavailable('networking is off on this host (DIRECTOR_NETWORKING=off)');
    const applied: EnforceResult['networks'] = [];
    for (const [id, via] of targets) {
      if (via) await networks!.manager.applyPolicyFor(caller, via, policy);
      else await networks!.manager.applyPolicy(caller, id, policy);
      applied.push({ networkId: id, applied: true, policy: policy.name });
    }
    return { policyId, kind: 'network_policy', name: policy.name, sandboxes: [], networks: applied, sessions };
  }

  /** The running sandboxes in scope: the named one (409 unless running) and those on the named network. */
  #targets(caller: Caller, scope: EnforceScope): SandboxRecord[] {
    const { sandboxes, networks, store } = this.#deps;
    const out = new Map<string, SandboxRecord>();
    if (scope.sandboxId) {
      const rec = sandboxes.get(caller, scope.sandboxId);
      if (rec.status !== 'running')
        throw conflict(`sandbox ${rec.id} is ${rec.status}; a profile is enforced on running sandboxes`, { status: rec.status });
      out.set(rec.id, rec);
    }
    if (scope.networkId) {
      if (!networks) throw notFound('network', scope.networkId);
      const net = networks.manager.get(caller, scope.networkId);
      for (const s of networks.store.sandboxesOn(net.id)) {
        const rec = store.get(caller.workspace, s.id);
        if (rec?.status === 'running') out.set(rec.id, rec);
      }
    }
    return [...out.values()];
  }

  async #applyProfile(caller: Caller, rec: SandboxRecord, profile: SecurityProfile): Promise<SandboxEnforcement> {
    const { engine, teardown, db, clock, events, config } = this.#deps;
    const changes = planEnforcement(rec, profile.constraints, config.nofile, typeof engine.updateLimits === 'function');
    const mustStop = changes.some((c) => c.action === 'requires_stop');
    const pids = changes.find((c) => c.field === 'resourceLimits.pids');
    if (pids && !mustStop && rec.containerId) {
      await engineCall(() => engine.updateLimits!(rec.containerId!, { pidsLimit: pids.to as number }));
    }
    // The record follows what is now in force, so views, metrics and execute see it.
    const sets: string[] = [];
    const args: (string | number)[] = [];
    if (pids && !mustStop) {
      sets.push("'$.resourceLimits.pids'", '?');
      args.push(pids.to as number);
    }
    if (changes.some((c) => c.field === 'securityPolicy.allowExec')) sets.push("'$.securityPolicy.allowExec'", "json('false')");
    sets.push("'$.profileId'", '?');
    args.push(profile.id);
    db.sql
      .prepare(`UPDATE sandboxes SET spec = json_set(spec, ${sets.join(', ')}), updated_ms = ? WHERE id = ?`)
      .run(...args, clock.nowMs(), rec.id);
    let stopped = false;
    if (mustStop) {
      const why = changes
        .filter((c) => c.action === 'requires_stop')
        .map((c) => c.field)
        .join(', ');
      await teardown.stop(rec, `stopped: cannot comply live with security profile ${profile.name} (${why})`, 2, caller);
      stopped = true;
    }
    events.emit({
      type: 'policy_enforced',
      severity: stopped ? 'medium' : 'info',
      workspace: rec.workspace,
      sandboxId: rec.id,
      networkId: rec.networkId,
      actor: caller.actor ?? null,
      details: { profileId: profile.id, profile: profile.name, changes, stopped },
    });
    return { sandboxId: rec.id, changes, stopped };
  }
}
