import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveSpec } from '../../../runtime/sandbox/spec.ts';
import { defaultConfig, directorErrorOf } from './support.ts';

const cfg = defaultConfig();
const resolve = (raw: unknown) => resolveSpec(raw, cfg);
const refusal = (raw: unknown) => directorErrorOf(() => resolve(raw));

/** Asserts `raw` is refused as a policy violation naming `field`. */
function refusedAsViolation(raw: unknown, field: string): void {
  const err = refusal(raw);
  assert.is(err.code, 'VALIDATION_ERROR');
  assert.is(err.details?.field, field, JSON.stringify(raw));
  assert.is(err.details?.policyViolation, true, JSON.stringify(raw));
}

/** Asserts `raw` is refused as a VALIDATION_ERROR naming `field`. */
function refusedNaming(raw: unknown, field: string): void {
  const err = refusal(raw);
  assert.is(err.code, 'VALIDATION_ERROR');
  assert.is(err.details?.field, field, JSON.stringify(raw));
}

const SEED_EXAMPLE = {
  name: 'Code Execution Sandbox',
  image: 'node:22-alpine',
  command: ['node', 'app.js'],
  environment: { NODE_ENV: 'production', API_KEY: 'secure_key' },
  resourceLimits: { cpu: 2.0, memory: 1024, disk: 2048, network: false, maxDuration: 300000 },
  securityPolicy: {
    allowFilesystem: true,
    allowNetwork: false,
    allowExec: true,
    allowedPaths: ['/app'],
    blockedPaths: ['/etc', '/root'],
    readOnlyRoot: true,
    noPrivileges: true,
  },
  networkMode: 'isolated',
};

test('an empty body gets every default: read-only root, no network, /workspace writable', () => {
  const s = resolve({});
  assert.is(s.name, 'sandbox');
  assert.is(s.image, cfg.defaultImage);
  assert.is(s.command, null);
  assert.is(s.workdir, null);
  assert.equal(s.environment, {});
  assert.equal(s.labels, {});
  assert.equal(s.resourceLimits, {
    cpu: cfg.defaultCpu,
    memory: cfg.defaultMemoryMb,
    disk: cfg.defaultDiskMb,
    network: false,
    maxDuration: cfg.defaultMaxDurationMs,
    pids: cfg.defaultPids,
  });
  assert.equal(s.securityPolicy, {
    allowFilesystem: true,
    allowNetwork: false,
    allowExec: true,
    allowedPaths: ['/workspace'],
    blockedPaths: [],
    readOnlyRoot: true,
    noPrivileges: true,
  });
  assert.is(s.networkMode, 'none');
});

test("accepts the Director Protocol's own example body and turns its `isolated` into `none` because networking is off", () => {
  const s = resolve(SEED_EXAMPLE);
  assert.is(s.name, 'Code Execution Sandbox');
  assert.is(s.image, 'node:22-alpine');
  assert.equal(s.command, ['node', 'app.js']);
  assert.equal(s.environment, { NODE_ENV: 'production', API_KEY: 'secure_key' });
  assert.equal(s.resourceLimits, { cpu: 2, memory: 1024, disk: 2048, network: false, maxDuration: 300000, pids: cfg.defaultPids });
  assert.equal(s.securityPolicy.allowedPaths, ['/app']);
  assert.equal(s.securityPolicy.blockedPaths, ['/etc', '/root']);
  assert.is(s.networkMode, 'none');
});

test('networking needs both allowNetwork and resourceLimits.network', () => {
  assert.is(resolve({ securityPolicy: { allowNetwork: true } }).networkMode, 'isolated');
  assert.is(resolve({ securityPolicy: { allowNetwork: true }, networkMode: 'none' }).networkMode, 'none');
  const off = resolve({ securityPolicy: { allowNetwork: true }, resourceLimits: { network: false }, networkMode: 'isolated' });
  assert.is(off.networkMode, 'none');
  assert.is(off.resourceLimits.network, false);
  assert.is(off.securityPolicy.allowNetwork, false);
});

test('allowFilesystem=false leaves nothing writable and forces a read-only root', () => {
  const s = resolve({ securityPolicy: { allowFilesystem: false } });
  assert.equal(s.securityPolicy.allowedPaths, []);
  assert.is(s.securityPolicy.readOnlyRoot, true);
});

test('a limit above the operator ceiling is a policy violation naming the field', () => {
  refusedAsViolation({ resourceLimits: { cpu: cfg.maxCpu + 1 } }, 'resourceLimits.cpu');
  refusedAsViolation({ resourceLimits: { memory: cfg.maxMemoryMb + 1 } }, 'resourceLimits.memory');
  refusedAsViolation({ resourceLimits: { disk: cfg.maxDiskMb + 1 } }, 'resourceLimits.disk');
  refusedAsViolation({ resourceLimits: { maxDuration: cfg.maxDurationMs + 1 } }, 'resourceLimits.maxDuration');
  refusedAsViolation({ resourceLimits: { pids: cfg.maxPids + 1 } }, 'resourceLimits.pids');
});

test('a limit exactly at the operator ceiling is accepted', () => {
  const s = resolve({ resourceLimits: { cpu: cfg.maxCpu, memory: cfg.maxMemoryMb, pids: cfg.maxPids } });
  assert.is(s.resourceLimits.cpu, cfg.maxCpu);
  assert.is(s.resourceLimits.memory, cfg.maxMemoryMb);
  assert.is(s.resourceLimits.pids, cfg.maxPids);
});

test('forbidden engine keys are refused anywhere in the body, in any case, naming their path', () => {
  const cases: [unknown, string][] = [
    [{ Privileged: true }, 'Privileged'],
    [{ privileged: true }, 'privileged'],
    [{ PRIVILEGED: false }, 'PRIVILEGED'],
    [{ HostConfig: { Privileged: true } }, 'HostConfig'],
    [{ resourceLimits: { Privileged: true } }, 'resourceLimits.Privileged'],
    [{ securityPolicy: { nested: [{ CapAdd: ['SYS_ADMIN'] }] } }, 'securityPolicy.nested[0].CapAdd'],
    [{ CapAdd: ['NET_ADMIN'] }, 'CapAdd'],
    [{ cap_add: ['NET_ADMIN'] }, 'cap_add'],
    [{ Binds: ['/:/host'] }, 'Binds'],
    [{ Mounts: [] }, 'Mounts'],
    [{ Devices: ['/dev/kmsg'] }, 'Devices'],
    [{ Runtime: 'runc' }, 'Runtime'],
    [{ NetworkMode: 'host' }, 'NetworkMode'],
    [{ networkMode: 'host' }, 'networkMode'],
    [{ networkMode: 'container:abc' }, 'networkMode'],
    [{ PidMode: 'host' }, 'PidMode'],
    [{ User: 'root' }, 'User'],
    [{ user: '0:0' }, 'user'],
    [{ SecurityOpt: ['seccomp=unconfined'] }, 'SecurityOpt'],
    [{ Sysctls: {} }, 'Sysctls'],
    [{ securityPolicy: { noPrivileges: false } }, 'securityPolicy.noPrivileges'],
  ];
  for (const [raw, field] of cases) refusedAsViolation(raw, field);
});

test('environment and label keys named like forbidden keys are plain user data', () => {
  const s = resolve({ environment: { Privileged: '1', HostConfig: 'x', User: 'me' }, labels: { privileged: 'yes', runtime: 'node' } });
  assert.equal(s.environment, { Privileged: '1', HostConfig: 'x', User: 'me' });
  assert.equal(s.labels, { privileged: 'yes', runtime: 'node' });
});

test('a workdir inside /proc, /sys or /dev is a policy violation', () => {
  refusedAsViolation({ workdir: '/proc/self/fd' }, 'workdir');
  refusedAsViolation({ workdir: '/sys' }, 'workdir');
  refusedAsViolation({ workdir: '/dev/shm' }, 'workdir');
});

test('paths with `..`, `.` or `//` are refused as not normalized', () => {
  for (const workdir of ['/app/../etc', '/app//x', '/app/./x']) {
    const err = refusal({ workdir });
    assert.is(err.details?.field, 'workdir');
    assert.match(String(err.details?.issue), /normalized/);
  }
  refusedNaming({ securityPolicy: { allowedPaths: ['/a/../b'] } }, 'securityPolicy.allowedPaths[0]');
});

test('relative paths are refused naming the field', () => {
  refusedNaming({ workdir: 'app' }, 'workdir');
  refusedNaming({ securityPolicy: { allowedPaths: ['app'] } }, 'securityPolicy.allowedPaths[0]');
});

test('engine sockets can be neither writable nor a workdir', () => {
  refusedAsViolation({ securityPolicy: { allowedPaths: ['/var/run/docker.sock'] } }, 'securityPolicy.allowedPaths[0]');
  refusedAsViolation({ securityPolicy: { allowedPaths: ['/run/docker'] } }, 'securityPolicy.allowedPaths[0]');
  refusedAsViolation({ workdir: '/run/containerd/containerd.sock' }, 'workdir');
});

test('an allowed path that overlaps a blocked path is refused', () => {
  refusedNaming({ securityPolicy: { allowedPaths: ['/app'], blockedPaths: ['/app'] } }, 'securityPolicy.allowedPaths[0]');
  refusedNaming({ securityPolicy: { allowedPaths: ['/data', '/etc/app'], blockedPaths: ['/etc'] } }, 'securityPolicy.allowedPaths[1]');
  refusedNaming({ securityPolicy: { allowedPaths: ['/srv'], blockedPaths: ['/srv/secret'] } }, 'securityPolicy.allowedPaths[0]');
});

// Regression (fixed): checkPath returns path.posix.normalize(p), which keeps a trailing slash, so the overlap
// test `a.startsWith(`${b}/`)` compares '/etc/x' with '/etc//' and misses the overlap.
test('an allowed path under a blocked path written with a trailing slash is refused', () => {
  refusedNaming({ securityPolicy: { allowedPaths: ['/etc/x'], blockedPaths: ['/etc/'] } }, 'securityPolicy.allowedPaths[0]');
});

// Regression (fixed): blockedPaths ['/'] is accepted (allowSystemDirs) and the overlap test builds '//' as the
// prefix, so no allowed path is ever seen as under it.
test('blocking / is refused because it overlaps every allowed path', () => {
  refusal({ securityPolicy: { blockedPaths: ['/'] } });
});

test('/tmp in allowedPaths is refused because it is always provided', () => {
  refusedNaming({ securityPolicy: { allowedPaths: ['/tmp'] } }, 'securityPolicy.allowedPaths');
});

test('duplicate allowed paths are refused', () => {
  refusedNaming({ securityPolicy: { allowedPaths: ['/app', '/app'] } }, 'securityPolicy.allowedPaths');
});

// Regression (fixed): the /tmp and uniqueness checks compare the un-stripped normalized strings, so '/tmp/'
// and ['/app', '/app/'] pass and become two tmpfs mounts on one mount point.
test('/tmp/ and /app + /app/ are refused like /tmp and duplicates', () => {
  refusedNaming({ securityPolicy: { allowedPaths: ['/tmp/'] } }, 'securityPolicy.allowedPaths');
  refusedNaming({ securityPolicy: { allowedPaths: ['/app', '/app/'] } }, 'securityPolicy.allowedPaths');
});

test('allowedPaths together with allowFilesystem=false is a contradiction', () => {
  refusedNaming({ securityPolicy: { allowFilesystem: false, allowedPaths: ['/app'] } }, 'securityPolicy.allowedPaths');
  refusedNaming({ securityPolicy: { allowFilesystem: false, readOnlyRoot: false } }, 'securityPolicy.readOnlyRoot');
});

test('unknown fields are refused naming their full path', () => {
  refusedNaming({ colour: 1 }, 'colour');
  refusedNaming({ resourceLimits: { gpu: 1 } }, 'resourceLimits.gpu');
  refusedNaming({ securityPolicy: { allowEverything: true } }, 'securityPolicy.allowEverything');
  assert.is(refusal({ colour: 1 }).details?.policyViolation, undefined);
});

test('values of the wrong type are refused naming the field', () => {
  refusedNaming({ resourceLimits: { cpu: '2' } }, 'resourceLimits.cpu');
  refusedNaming({ resourceLimits: { memory: 1.5 } }, 'resourceLimits.memory');
  refusedNaming({ command: 'node app.js' }, 'command');
  refusedNaming({ command: ['node', 1] }, 'command[1]');
  refusedNaming({ environment: { NODE_ENV: 1 } }, 'environment.NODE_ENV');
  refusedNaming({ labels: { team: ['a'] } }, 'labels.team');
});

// Regression (fixed): spec.ts:46/51 declare the key pattern through Type.Record, which TypeBox 1.x emits as
// `patternProperties` without `additionalProperties: false`, so keys that miss the pattern are
// not checked at all — neither the key nor the type of its value.
test('environment and label keys outside their patterns are refused', () => {
  refusal({ environment: { 'BAD-KEY': 'x' } });
  refusal({ environment: { 'X=Y': { a: 1 } } });
  refusal({ labels: { 'Bad Label': ['x'] } });
});

test('a body that is not a JSON object is refused as `body`', () => {
  for (const raw of [null, 'x', 42, [], [{}]]) refusedNaming(raw, 'body');
});

test.run();
