import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AGENT_MOUNT, type ContainerSpec } from '../../../runtime/engine/engine.ts';
import { DOCKER_DEFAULT_MASKED_PATHS, toCreateOptions } from '../../../runtime/engine/docker/translate.ts';

const base: ContainerSpec = {
  name: 'director-sbx_1',
  image: 'node:22-alpine',
  cmd: ['sleep', 'infinity'],
  env: { A: '1', B: 'x=y' },
  user: '1000:1000',
  workdir: '/app',
  labels: { 'director.managed': 'true' },
  nanoCpus: 1_500_000_000,
  memoryBytes: 512 * 1024 * 1024,
  pidsLimit: 128,
  readOnlyRoot: true,
  tmpfs: [
    { path: '/tmp', sizeBytes: 1024, noexec: false, uid: 1000, gid: 1000, mode: 0o1777 },
    { path: '/app', sizeBytes: 2048, noexec: true, uid: 1000, gid: 1000, mode: 0o755 },
  ],
  maskedPaths: ['/etc', '/root'],
  network: { mode: 'none' },
  ulimits: [{ name: 'core', soft: 0, hard: 0 }],
  logMaxBytes: 10_485_760,
  oomScoreAdj: 500,
  hostname: 'sandbox',
};

const hostConfig = (spec: Partial<ContainerSpec> = {}) => {
  const hc = toCreateOptions({ ...base, ...spec }).HostConfig;
  assert.ok(hc);
  return hc as NonNullable<typeof hc> & { MaskedPaths: string[]; CgroupnsMode: string };
};

test('never privileged, drops every capability and grants nothing back', () => {
  const hc = hostConfig();
  assert.is(hc.Privileged, false);
  assert.equal(hc.CapDrop, ['ALL']);
  assert.equal(hc.CapAdd, []);
  assert.equal(hc.Binds, []);
  assert.equal(hc.Devices, []);
  assert.equal(hc.Mounts, []);
  assert.is(hc.PublishAllPorts, false);
});

test('forbids gaining privileges and runs an init as PID 1', () => {
  const hc = hostConfig();
  assert.ok((hc.SecurityOpt as string[]).includes('no-new-privileges:true'));
  assert.is(hc.Init, true);
});

test('keeps IPC, PID, UTS, user and cgroup namespaces private and never restarts', () => {
  const hc = hostConfig();
  assert.is(hc.IpcMode, 'private');
  assert.is(hc.PidMode, '');
  assert.is(hc.UTSMode, '');
  assert.is(hc.UsernsMode, '');
  assert.is(hc.CgroupnsMode, 'private');
  assert.equal(hc.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 });
});

test('sets swap equal to memory so the sandbox gets no swap', () => {
  const hc = hostConfig({ memoryBytes: 3 * 1024 * 1024 });
  assert.is(hc.Memory, 3 * 1024 * 1024);
  assert.is(hc.MemorySwap, hc.Memory);
  assert.is(hc.MemorySwappiness, 0);
  assert.is(hc.NanoCpus, 1_500_000_000);
  assert.is(hc.PidsLimit, 128);
  assert.is(hc.OomScoreAdj, 500);
});

test("keeps all of Docker's default masked paths and adds the spec's", () => {
  const masked = hostConfig().MaskedPaths;
  for (const p of DOCKER_DEFAULT_MASKED_PATHS) assert.ok(masked.includes(p), p);
  assert.ok(masked.includes('/etc'));
  assert.ok(masked.includes('/root'));
  assert.equal(hostConfig({ maskedPaths: [] }).MaskedPaths, [...DOCKER_DEFAULT_MASKED_PATHS]);
});

test('writes tmpfs options with size, exec/noexec, owner and octal mode', () => {
  const tmpfs = hostConfig().Tmpfs ?? {};
  assert.is(tmpfs['/tmp'], 'rw,nosuid,nodev,exec,size=1024,uid=1000,gid=1000,mode=1777');
  assert.is(tmpfs['/app'], 'rw,nosuid,nodev,noexec,size=2048,uid=1000,gid=1000,mode=755');
  const ro = hostConfig({ tmpfs: [{ path: '/ro', sizeBytes: 1, noexec: true, readOnly: true }] }).Tmpfs ?? {};
  assert.is(ro['/ro'], 'ro,nosuid,nodev,noexec,size=1,mode=755');
});

test('every tmpfs mount is nosuid and nodev', () => {
  for (const opts of Object.values(hostConfig().Tmpfs ?? {})) {
    const list = opts.split(',');
    assert.ok(list.includes('nosuid') && list.includes('nodev'), opts);
  }
});

test('read-only root follows the spec', () => {
  assert.is(hostConfig().ReadonlyRootfs, true);
  assert.is(hostConfig({ readOnlyRoot: false }).ReadonlyRootfs, false);
});

test('network mode `none` joins nothing; a network spec joins that network with its address', () => {
  const none = toCreateOptions(base);
  assert.is(none.HostConfig?.NetworkMode, 'none');
  assert.is(none.NetworkingConfig, undefined);
  const joined = toCreateOptions({ ...base, network: { mode: 'network', network: 'net-1', ipv4: '10.1.0.5', dns: ['10.1.0.1'] } });
  assert.is(joined.HostConfig?.NetworkMode, 'net-1');
  assert.equal(joined.NetworkingConfig, { EndpointsConfig: { 'net-1': { IPAMConfig: { IPv4Address: '10.1.0.5' } } } });
  assert.equal(joined.HostConfig?.Dns, ['10.1.0.1']);
});

test('caps the engine-side log at logMaxBytes in one file', () => {
  assert.equal(hostConfig().LogConfig, { Type: 'json-file', Config: { 'max-size': '10485760', 'max-file': '1' } });
});

test('passes user, workdir, env, labels and ulimits through', () => {
  const o = toCreateOptions(base);
  assert.is(o.User, '1000:1000');
  assert.is(o.WorkingDir, '/app');
  assert.equal(o.Env, ['A=1', 'B=x=y']);
  assert.equal(o.Labels, { 'director.managed': 'true' });
  assert.equal(o.Cmd, ['sleep', 'infinity']);
  assert.is(o.Entrypoint, undefined);
  assert.is(o.Tty, false);
  assert.is(o.OpenStdin, false);
  assert.equal(o.HostConfig?.Ulimits, [{ Name: 'core', Soft: 0, Hard: 0 }]);
});

test("mounts Director's agent read-only at its fixed paths, and nothing else", () => {
  const hc = hostConfig({
    agentMount: { binary: '/srv/director/.state/agent/director-agent', channelDir: '/srv/director/data/agent/sbx_1' },
  });
  assert.equal(hc.Mounts, [
    {
      Type: 'bind',
      Source: '/srv/director/.state/agent/director-agent',
      Target: AGENT_MOUNT.binary,
      ReadOnly: true,
      BindOptions: { Propagation: 'rprivate' },
    },
    {
      Type: 'bind',
      Source: '/srv/director/data/agent/sbx_1',
      Target: AGENT_MOUNT.channelDir,
      ReadOnly: true,
      BindOptions: { Propagation: 'rprivate' },
    },
  ]);
  assert.equal(hc.Binds, []);
  assert.equal(AGENT_MOUNT, { binary: '/.director/agent', channelDir: '/.director/run' });
});

test('refuses agent mount sources that are relative, unnormalized or the root', () => {
  for (const bad of ['agent', '/srv/../etc', '/srv//agent', '/srv/agent/', '/'])
    assert.throws(() => hostConfig({ agentMount: { binary: bad, channelDir: '/srv/run' } }), /normalized absolute path/, bad);
  assert.throws(() => hostConfig({ agentMount: { binary: '/srv/agent', channelDir: '../run' } }), /normalized absolute path/);
});

test.run();
