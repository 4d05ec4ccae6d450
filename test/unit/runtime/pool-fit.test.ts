/** Which requests a warm sandbox can be fitted to, what the fit changes, and how a fitted sandbox's environment is kept. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { SecretBox, SecretError } from '../../../core/secrets.ts';
import { SandboxEnvironments } from '../../../runtime/sandbox/environment.ts';
import { MIB } from '../../../runtime/sandbox/hardening.ts';
import { fitLimits, poolKeyOf, unfitReason } from '../../../runtime/sandbox/pool.ts';
import { resolveSpec } from '../../../runtime/sandbox/spec.ts';
import { NO_OWNER, SandboxStore, toStoredSpec } from '../../../runtime/store/sandboxes.ts';
import { defaultConfig } from './support.ts';

const cfg = defaultConfig({ maxPids: 4096 });
const IMAGE = 'director/busybox:latest';
const pooled = resolveSpec({ image: IMAGE }, cfg);
const spec = (req: Record<string, unknown>) => resolveSpec({ image: IMAGE, ...req }, cfg);

const able = { tmpfs: true, nofile: cfg.nofile, imageWorkdir: '/home/sandbox' };

test('limits, disk, environment, workdir, name, labels and maxDuration are fitted: same pool key, no fallback', () => {
  const asked = spec({
    name: 'x',
    labels: { team: 'a' },
    environment: { A: '1' },
    resourceLimits: { cpu: 0.25, memory: 300, pids: 20, maxDuration: 5000, disk: 7 },
    workdir: '/workspace',
  });
  assert.is(unfitReason(asked, pooled, able), null);
  assert.is(poolKeyOf(asked), poolKeyOf(pooled));
  for (const workdir of ['/tmp', '/workspace', '/home/sandbox']) assert.is(unfitReason(spec({ workdir }), pooled, able), null, workdir);
  // A profile is fitted when what it narrows is the pool's (its nofile the operator's).
  assert.is(unfitReason({ ...pooled, profileId: 'prf_0000000000000000', nofile: cfg.nofile }, pooled, able), null);
});

test('what is baked into a container falls back to a cold create, with its reason', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ securityPolicy: { blockedPaths: ['/etc'] } }, 'security_policy'],
    [{ securityPolicy: { readOnlyRoot: false } }, 'security_policy'],
    [{ securityPolicy: { allowExec: false } }, 'security_policy'],
    [{ securityPolicy: { allowedPaths: ['/app'] } }, 'security_policy'],
    [{ command: ['sleep', '1'] }, 'command'],
    [{ securityPolicy: { allowNetwork: true } }, 'network'],
  ];
  for (const [req, reason] of cases) {
    const s = spec(req);
    assert.is(unfitReason(s, pooled, able), reason, JSON.stringify(req));
    assert.is.not(poolKeyOf(s), poolKeyOf(pooled), `${JSON.stringify(req)} shares the pool key`);
  }
  assert.is(unfitReason(spec({ image: 'other:1' }), undefined, able), 'no_pool');
  assert.is(unfitReason({ ...pooled, nofile: 64 }, pooled, able), 'nofile');
  // A working directory the pooled container may lack; a disk size without the resizer (a remote engine).
  assert.is(unfitReason(spec({ workdir: '/srv/app' }), pooled, able), 'workdir');
  assert.is(unfitReason(spec({ resourceLimits: { disk: 7 } }), pooled, { ...able, tmpfs: false }), 'disk');
  // A Director network without a pool on it yet.
  assert.is(unfitReason({ ...pooled, networkMode: 'net_0000000000000000' }, undefined, able), 'network');
});

test('a pool on a Director network serves that network only', () => {
  const onNet = resolveSpec({ image: IMAGE, securityPolicy: { allowNetwork: true }, networkMode: 'net_AAAAAAAAAAAAAAAA' }, cfg);
  const asked = resolveSpec(
    { image: IMAGE, securityPolicy: { allowNetwork: true }, networkMode: 'net_AAAAAAAAAAAAAAAA', resourceLimits: { memory: 64 } },
    cfg,
  );
  assert.is(unfitReason(asked, onNet, able), null);
  assert.is.not(poolKeyOf(onNet), poolKeyOf(pooled));
  const other = resolveSpec({ image: IMAGE, securityPolicy: { allowNetwork: true }, networkMode: 'net_BBBBBBBBBBBBBBBB' }, cfg);
  assert.is.not(poolKeyOf(other), poolKeyOf(onNet));
  assert.is(unfitReason(other, onNet, able), 'security_policy');
});

test('a fit changes exactly the limits that differ, in engine units', () => {
  assert.equal(fitLimits(pooled, pooled), {});
  assert.equal(fitLimits(spec({ resourceLimits: { memory: 96 } }), pooled), { memoryBytes: 96 * MIB });
  assert.equal(fitLimits(spec({ resourceLimits: { cpu: 0.5, pids: 48 } }), pooled), { nanoCpus: 0.5e9, pidsLimit: 48 });
  assert.equal(fitLimits(spec({ environment: { A: '1' }, resourceLimits: { maxDuration: 5000 } }), pooled), {});
});

test("a fitted sandbox's environment is kept sealed with its record, bound to it, and read back", () => {
  const db = openDb('/tmp/x', ':memory:');
  const store = new SandboxStore(db);
  const box = new SecretBox(Buffer.alloc(32, 7));
  const base = {
    workspace: 'ws',
    name: 'n',
    image: IMAGE,
    status: 'running' as const,
    reason: null,
    spec: toStoredSpec(pooled),
    labels: {},
    containerId: 'c',
    networkId: null,
    ipAddress: null,
    pooled: false,
    poolKey: null,
    exitCode: null,
    createdMs: 1,
    updatedMs: 1,
    startedMs: 1,
    deadlineMs: null,
    stoppedMs: null,
    deletedMs: null,
    owner: NO_OWNER,
  };
  store.insert({ ...base, id: 'sbx_a' });
  store.insert({ ...base, id: 'sbx_b' });
  const envs = new SandboxEnvironments(store, box);
  envs.keep('sbx_a', { TOKEN: 'very-secret', B: '2' });
  envs.keep('sbx_b', {});
  assert.not.match(store.sealedEnvironment('sbx_a')!, 'very-secret');
  assert.is(store.sealedEnvironment('sbx_b'), null, 'an empty environment is not kept');
  // A fresh instance (a restarted server) reads it from the store.
  const after = new SandboxEnvironments(store, box);
  assert.equal(after.of('sbx_a'), { TOKEN: 'very-secret', B: '2' });
  assert.equal(after.of('sbx_b'), {});
  // Bound to its record: copied to another, it does not open.
  store.setSealedEnvironment('sbx_b', store.sealedEnvironment('sbx_a')!);
  assert.throws(
    () => new SandboxEnvironments(store, box).of('sbx_b'),
    (e: unknown) => e instanceof SecretError,
  );
  db.close();
});

test.run();
