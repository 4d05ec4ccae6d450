import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildContainerSpec, LABEL, MIB, SANDBOX_USER, type HardeningContext } from '../../../runtime/sandbox/hardening.ts';
import { resolveSpec, type EffectiveSpec } from '../../../runtime/sandbox/spec.ts';
import { defaultConfig } from './support.ts';

const cfg = defaultConfig();
const ctx: HardeningContext = {
  sandboxId: 'sbx_aaaaaaaaaaaaaaaa',
  workspace: 'wsp_bbbbbbbbbbbbbbbb',
  runtimeName: 'rt-test',
  network: { mode: 'network', network: 'net-1', ipv4: '10.0.0.2' },
  imageWorkdir: '/home/sandbox',
};
const build = (raw: unknown, c: Partial<HardeningContext> = {}) => buildContainerSpec(resolveSpec(raw, cfg), { ...ctx, ...c }, cfg);

test('runs as 1000:1000 whatever the effective spec says', () => {
  assert.is(SANDBOX_USER, '1000:1000');
  assert.is(build({}).user, '1000:1000');
  // Even a spec forged past resolveSpec has no field that could change the user.
  const forged = { ...resolveSpec({}, cfg), user: 'root' } as EffectiveSpec;
  assert.is(buildContainerSpec(forged, ctx, cfg).user, '1000:1000');
});

test('mounts a tmpfs on /tmp and on each allowed path, owned by the sandbox user', () => {
  const spec = build({ securityPolicy: { allowedPaths: ['/app', '/data'] } });
  assert.equal(
    spec.tmpfs.map((m) => m.path),
    ['/tmp', '/app', '/data'],
  );
  for (const m of spec.tmpfs) {
    assert.is(m.uid, 1000);
    assert.is(m.gid, 1000);
  }
  assert.is(spec.tmpfs[0]!.mode, 0o1777);
  assert.is(spec.tmpfs[1]!.mode, 0o755);
});

test('tmpfs sizes together never exceed the disk limit', () => {
  for (const [disk, paths] of [
    [1, ['/a', '/b']],
    [7, ['/a', '/b']],
    [2048, ['/app']],
    [100, []],
    [4096, ['/a', '/b', '/c', '/d', '/e']],
  ] as const) {
    const spec = build({ resourceLimits: { disk }, securityPolicy: { allowedPaths: [...paths] } });
    const total = spec.tmpfs.reduce((n, m) => n + m.sizeBytes, 0);
    assert.ok(total <= disk * MIB, `disk ${disk}: ${total} > ${disk * MIB}`);
    assert.ok(spec.tmpfs.every((m) => m.sizeBytes > 0));
  }
});

test('tmpfs mounts are noexec exactly when allowExec is false', () => {
  assert.ok(build({ securityPolicy: { allowExec: false } }).tmpfs.every((m) => m.noexec));
  assert.ok(build({ securityPolicy: { allowExec: true } }).tmpfs.every((m) => !m.noexec));
  assert.ok(build({}).tmpfs.every((m) => !m.noexec));
});

test('allowFilesystem=false mounts no tmpfs and keeps the root read-only', () => {
  const spec = build({ securityPolicy: { allowFilesystem: false } });
  assert.equal(spec.tmpfs, []);
  assert.is(spec.readOnlyRoot, true);
  const forged = { ...resolveSpec({ securityPolicy: { allowFilesystem: false } }, cfg) };
  forged.securityPolicy = { ...forged.securityPolicy, readOnlyRoot: false };
  assert.is(buildContainerSpec(forged, ctx, cfg).readOnlyRoot, true);
});

test('readOnlyRoot=false is honoured when the filesystem is allowed', () => {
  assert.is(build({ securityPolicy: { readOnlyRoot: false } }).readOnlyRoot, false);
  assert.is(build({}).readOnlyRoot, true);
});

test('masks exactly the blocked paths', () => {
  assert.equal(build({ securityPolicy: { blockedPaths: ['/etc', '/root'] } }).maskedPaths, ['/etc', '/root']);
  assert.equal(build({}).maskedPaths, []);
});

test('has no network when resourceLimits.network is false, even if the context offers one', () => {
  assert.equal(build({}).network, { mode: 'none' });
  assert.equal(build({ securityPolicy: { allowNetwork: true }, resourceLimits: { network: false } }).network, { mode: 'none' });
});

test("joins the context's network when networking is allowed", () => {
  assert.equal(build({ securityPolicy: { allowNetwork: true } }).network, ctx.network);
});

test('sets core dumps off and caps open files and file size', () => {
  const u = Object.fromEntries(build({}).ulimits.map((l) => [l.name, l]));
  assert.equal(u.core, { name: 'core', soft: 0, hard: 0 });
  assert.equal(u.nofile, { name: 'nofile', soft: cfg.nofile, hard: cfg.nofile });
  assert.equal(u.fsize, { name: 'fsize', soft: cfg.fsizeMb * MIB, hard: cfg.fsizeMb * MIB });
});

test('converts memory MiB to bytes and cores to nano-CPUs', () => {
  const spec = build({ resourceLimits: { memory: 1024, cpu: 1.5, pids: 64 } });
  assert.is(spec.memoryBytes, 1024 * 1024 * 1024);
  assert.is(spec.nanoCpus, 1_500_000_000);
  assert.is(spec.pidsLimit, 64);
  assert.is(build({ resourceLimits: { cpu: 0.01 } }).nanoCpus, 10_000_000);
});

test('labels tie the container to its sandbox, runtime and workspace', () => {
  const labels = build({}).labels;
  assert.equal(labels, {
    [LABEL.managed]: 'true',
    [LABEL.runtime]: 'rt-test',
    [LABEL.sandbox]: ctx.sandboxId,
    [LABEL.workspace]: ctx.workspace,
  });
  assert.is(build({}, { poolKey: 'pool-1' }).labels[LABEL.pool], 'pool-1');
});

test('user labels are prefixed so they cannot overwrite the runtime labels', () => {
  const labels = build({ labels: { team: 'a', 'director.sandbox': 'sbx_forged' } }).labels;
  assert.is(labels['director.label.team'], 'a');
  assert.is(labels['director.label.director.sandbox'], 'sbx_forged');
  assert.is(labels[LABEL.sandbox], ctx.sandboxId);
});

test('runs `sleep infinity` when the request has no command, else the command', () => {
  assert.equal(build({}).cmd, ['sleep', 'infinity']);
  assert.equal(build({ command: ['node', 'app.js'] }).cmd, ['node', 'app.js']);
});

test("uses the request's workdir, else the image's, else /", () => {
  assert.is(build({ workdir: '/app' }).workdir, '/app');
  assert.is(build({}).workdir, '/home/sandbox');
  assert.is(build({}, { imageWorkdir: '' }).workdir, '/');
});

test('names the container after the sandbox and copies the environment', () => {
  const spec = build({ environment: { A: '1' } });
  assert.is(spec.name, `director-${ctx.sandboxId}`);
  assert.equal(spec.env, { A: '1' });
  assert.is(spec.hostname, 'sandbox');
  assert.ok(spec.oomScoreAdj > 0);
  assert.is(spec.logMaxBytes, cfg.logMaxBytes);
});

test.run();
