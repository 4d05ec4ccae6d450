/**
 * Stored policies from before first-match: migration 4 marks them deny-first, and the network
 * layer's boot decides each once. A store at version 3 is made as the earlier code left it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pino } from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { systemClock } from '../../../core/clock.ts';
import { MIGRATIONS, openDb } from '../../../core/db.ts';
import { createEventSink } from '../../../runtime/events.ts';
import { upgradeStoredPolicies } from '../../../runtime/network/upgrade.ts';
import { NetworkStore } from '../../../runtime/store/networks.ts';

const test = suite('policy upgrade');

/** A policy as the earlier code stored it: no `order`. */
const old = (outbound: unknown[]) => JSON.stringify({ name: 'old', inbound: [], outbound, logging: true, metrics: true, mode: 'enforce' });

test('policies stored before first-match: recompiled in order as written, or kept deny-first and flagged when rules are shadowed', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-upgrade-'));
  try {
    const sql = new DatabaseSync(path.join(dir, 'director.db'));
    for (const m of MIGRATIONS.slice(0, 3)) sql.exec(m.sql);
    sql.exec('PRAGMA user_version = 3');
    const insert = sql.prepare(
      `INSERT INTO networks (id, workspace, name, short, bridge, subnet, gateway, enable_dns, internal, policy, status, created_ms, updated_ms)
       VALUES (?, 'wsp_old', ?, ?, ?, ?, ?, 0, 0, ?, 'ready', 1, 1)`,
    );
    const row = (n: number, policy: string | null) =>
      insert.run(`net_old${n}aaaaaaaaaaaa`, `n${n}`, `aaaa000${n}`, `dir-aaaa000${n}`, `10.240.${n}.0/24`, `10.240.${n}.1`, policy);
    row(
      1,
      old([
        { action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32', port: 8443 },
        { action: 'deny', protocol: 'all' },
      ]),
    );
    row(
      2,
      old([
        { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
        { action: 'deny', protocol: 'tcp', destination: '203.0.113.20/32' },
      ]),
    );
    row(
      3,
      old([
        { action: 'deny', protocol: 'all', destination: '10.0.0.0/8' },
        { action: 'allow', protocol: 'tcp' },
      ]),
    );
    row(4, null);
    sql.close();

    const db = openDb(dir);
    const store = new NetworkStore(db);
    const order = () => store.active().map((r) => r.policy?.order ?? null);
    assert.equal(order(), ['deny-first', 'deny-first', 'deny-first', null], 'migration 4 marks how they were enforced');
    const events = createEventSink(db, systemClock);
    const deps = { store, events, clock: systemClock, logger: pino({ level: 'silent' }) };
    upgradeStoredPolicies(deps);
    assert.equal(order(), ['first-match', 'deny-first', 'first-match', null]);
    const [a, b, c] = store.active();
    assert.is(a!.policy!.review, undefined);
    assert.equal(b!.policy!.review?.shadowed, [{ rule: 'outbound[1]', by: 'outbound[0]' }]);
    assert.equal(b!.policy!.outbound.length, 2, 'the rules are kept');
    assert.is(c!.policy!.review, undefined);
    const seen = events.list({ limit: 10 }).map((e) => [e.type, e.severity, e.networkId, e.details]);
    assert.equal(seen.sort(), [
      [
        'policy_review_required',
        'high',
        b!.id,
        { name: 'old', order: 'deny-first', shadowed: [{ rule: 'outbound[1]', by: 'outbound[0]' }] },
      ],
      [
        'policy_upgraded',
        'medium',
        a!.id,
        { name: 'old', order: 'first-match', reordered: [{ allow: 'outbound[0]', deny: 'outbound[1]' }] },
      ],
    ]);
    // Decided once: a second boot changes nothing and reports nothing.
    upgradeStoredPolicies(deps);
    assert.equal(order(), ['first-match', 'deny-first', 'first-match', null]);
    assert.is(events.list({ limit: 10 }).length, 2);
    // The sink stores a producer's events a microtask after it emits: let it run before closing.
    await new Promise((r) => setImmediate(r));
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
