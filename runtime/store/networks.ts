import type { NetworkPolicy } from '../../policies/network-policy.ts';
import type { Db } from '../../core/db.ts';
import { ACTIVE_STATES } from '../sandbox/states.ts';
import { Where } from './where.ts';

export type NetworkStatus = 'creating' | 'ready' | 'deleting' | 'deleted' | 'failed';

export interface NetworkRecord {
  id: string;
  workspace: string;
  name: string;
  short: string;
  bridge: string;
  subnet: string;
  gateway: string;
  enableDns: boolean;
  internal: boolean;
  isolated: boolean;
  /** Set for the private network of an `isolated` sandbox: that sandbox's id. */
  privateFor: string | null;
  engineId: string | null;
  policy: NetworkPolicy | null;
  labels: Record<string, string>;
  status: NetworkStatus;
  createdMs: number;
  updatedMs: number;
  deletedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  name: string;
  short: string;
  bridge: string;
  subnet: string;
  gateway: string;
  enable_dns: number;
  internal: number;
  isolated: number;
  private_for: string | null;
  engine_id: string | null;
  policy: string | null;
  labels: string;
  status: string;
  created_ms: number;
  updated_ms: number;
  deleted_ms: number | null;
}

const fromRow = (r: Row): NetworkRecord => ({
  id: r.id,
  workspace: r.workspace,
  name: r.name,
  short: r.short,
  bridge: r.bridge,
  subnet: r.subnet,
  gateway: r.gateway,
  enableDns: r.enable_dns === 1,
  internal: r.internal === 1,
  isolated: r.isolated === 1,
  privateFor: r.private_for,
  engineId: r.engine_id,
  policy: r.policy ? (JSON.parse(r.policy) as NetworkPolicy) : null,
  labels: JSON.parse(r.labels) as Record<string, string>,
  status: r.status as NetworkStatus,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  deletedMs: r.deleted_ms,
});

export interface Observation {
  networkId: string;
  direction: 'outbound' | 'inbound';
  proto: string;
  remote: string;
  port: number;
  count: number;
  firstMs: number;
  lastMs: number;
}

/** Networks, and what audit mode observed on them. */
export class NetworkStore {
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  insert(r: NetworkRecord): void {
    this.db.sql
      .prepare(
        `INSERT INTO networks (id, workspace, name, short, bridge, subnet, gateway, enable_dns, internal, isolated, private_for, engine_id, policy, labels, status, created_ms, updated_ms, deleted_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.name,
        r.short,
        r.bridge,
        r.subnet,
        r.gateway,
        r.enableDns ? 1 : 0,
        r.internal ? 1 : 0,
        r.isolated ? 1 : 0,
        r.privateFor,
        r.engineId,
        r.policy ? JSON.stringify(r.policy) : null,
        JSON.stringify(r.labels),
        r.status,
        r.createdMs,
        r.updatedMs,
        r.deletedMs,
      );
  }

  byId(id: string): NetworkRecord | null {
    const row = this.db.sql.prepare('SELECT * FROM networks WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  byShort(short: string): NetworkRecord | null {
    const row = this.db.sql.prepare("SELECT * FROM networks WHERE short = ? AND status != 'deleted'").get(short) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** Visible to a workspace: another workspace's network is indistinguishable from a missing one. */
  get(workspace: string, id: string): NetworkRecord | null {
    const row = this.db.sql
      .prepare("SELECT * FROM networks WHERE id = ? AND workspace = ? AND status NOT IN ('deleted')")
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string, f: { limit: number; offset: number; includePrivate?: boolean }): { items: NetworkRecord[]; total: number } {
    const where = "workspace = ? AND status NOT IN ('deleted') " + (f.includePrivate ? '' : 'AND private_for IS NULL');
    const total = (this.db.sql.prepare(`SELECT count(*) AS n FROM networks WHERE ${where}`).get(workspace) as { n: number }).n;
    const rows = this.db.sql
      .prepare(`SELECT * FROM networks WHERE ${where} ORDER BY created_ms DESC, id LIMIT ? OFFSET ?`)
      .all(workspace, f.limit, f.offset) as unknown as Row[];
    return { items: rows.map(fromRow), total };
  }

  /** Every network the firewall must enforce (all workspaces). */
  active(): NetworkRecord[] {
    return (
      this.db.sql
        .prepare("SELECT * FROM networks WHERE status IN ('creating', 'ready', 'deleting') ORDER BY created_ms, id")
        .all() as unknown as Row[]
    ).map(fromRow);
  }

  nameTaken(workspace: string, name: string): boolean {
    return (
      this.db.sql
        .prepare("SELECT 1 FROM networks WHERE workspace = ? AND name = ? AND status NOT IN ('deleted', 'failed') AND private_for IS NULL")
        .get(workspace, name) !== undefined
    );
  }

  update(
    id: string,
    nowMs: number,
    patch: Partial<Pick<NetworkRecord, 'status' | 'engineId' | 'policy' | 'isolated' | 'deletedMs'>>,
  ): void {
    const cols: Record<string, string> = {
      status: 'status',
      engineId: 'engine_id',
      policy: 'policy',
      isolated: 'isolated',
      deletedMs: 'deleted_ms',
    };
    const sets = ['updated_ms = ?'];
    const args: (string | number | null)[] = [nowMs];
    for (const [k, v] of Object.entries(patch)) {
      sets.push(`${cols[k]} = ?`);
      args.push(
        k === 'policy' ? (v === null ? null : JSON.stringify(v)) : typeof v === 'boolean' ? (v ? 1 : 0) : (v as string | number | null),
      );
    }
    this.db.sql.prepare(`UPDATE networks SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
  }

  /** Sandboxes that hold an address on the network and are not gone. */
  sandboxesOn(networkId: string): { id: string; workspace: string; status: string; ipAddress: string | null; pooled: boolean }[] {
    const w = new Where().add('network_id = ?', networkId).anyOf('status', ACTIVE_STATES);
    const rows = this.db.sql
      .prepare(`SELECT id, workspace, status, ip_address AS ipAddress, pooled FROM sandboxes${w.sql}`)
      .all(...w.args) as { id: string; workspace: string; status: string; ipAddress: string | null; pooled: number }[];
    return rows.map((r) => ({ ...r, pooled: r.pooled === 1 }));
  }

  sandboxByAddress(networkId: string, ip: string): { id: string; workspace: string } | null {
    return (
      (this.db.sql
        .prepare('SELECT id, workspace FROM sandboxes WHERE network_id = ? AND ip_address = ? ORDER BY created_ms DESC LIMIT 1')
        .get(networkId, ip) as { id: string; workspace: string } | undefined) ?? null
    );
  }

  observe(o: Omit<Observation, 'count' | 'firstMs' | 'lastMs'>, nowMs: number): void {
    this.db.sql
      .prepare(
        `INSERT INTO net_observations (network_id, direction, proto, remote, port, count, first_ms, last_ms) VALUES (?, ?, ?, ?, ?, 1, ?, ?)
         ON CONFLICT (network_id, direction, proto, remote, port) DO UPDATE SET count = count + 1, last_ms = excluded.last_ms`,
      )
      .run(o.networkId, o.direction, o.proto, o.remote, o.port, nowMs, nowMs);
  }

  observations(networkId: string): Observation[] {
    return this.db.sql
      .prepare(
        'SELECT network_id AS networkId, direction, proto, remote, port, count, first_ms AS firstMs, last_ms AS lastMs FROM net_observations WHERE network_id = ? ORDER BY remote, port',
      )
      .all(networkId) as unknown as Observation[];
  }

  observeDns(networkId: string, name: string, address: string, nowMs: number): void {
    this.db.sql
      .prepare(
        'INSERT INTO dns_observations (network_id, name, address, last_ms) VALUES (?, ?, ?, ?) ON CONFLICT (network_id, name, address) DO UPDATE SET last_ms = excluded.last_ms',
      )
      .run(networkId, name, address, nowMs);
  }

  namesFor(networkId: string, address: string): string[] {
    return (
      this.db.sql
        .prepare('SELECT name FROM dns_observations WHERE network_id = ? AND address = ? ORDER BY name')
        .all(networkId, address) as { name: string }[]
    ).map((r) => r.name);
  }

  clearObservations(networkId: string): void {
    this.db.sql.prepare('DELETE FROM net_observations WHERE network_id = ?').run(networkId);
    this.db.sql.prepare('DELETE FROM dns_observations WHERE network_id = ?').run(networkId);
  }
}
