import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveEndpoint } from '../../../runtime/engine/docker/connect.ts';

test('without DOCKER_HOST uses the local unix socket', () => {
  const e = resolveEndpoint({});
  assert.equal(e.options, { socketPath: '/var/run/docker.sock' });
  assert.is(e.display, 'unix:///var/run/docker.sock');
  assert.is(e.local, true);
  assert.is(resolveEndpoint({ DOCKER_HOST: '   ' }).local, true);
});

test('unix:// DOCKER_HOST uses that socket and is local', () => {
  const e = resolveEndpoint({ DOCKER_HOST: 'unix:///x.sock' });
  assert.equal(e.options, { socketPath: '/x.sock' });
  assert.is(e.display, 'unix:///x.sock');
  assert.is(e.local, true);
});

test('tcp:// without TLS is plain http on 2375 by default and not local', () => {
  const e = resolveEndpoint({ DOCKER_HOST: 'tcp://1.2.3.4:2375' });
  assert.equal(e.options, { host: '1.2.3.4', port: 2375, protocol: 'http' });
  assert.is(e.display, 'http://1.2.3.4:2375');
  assert.is(e.local, false);
  assert.is(resolveEndpoint({ DOCKER_HOST: 'tcp://1.2.3.4' }).options.port, 2375);
});

test('DOCKER_TLS_VERIFY turns tcp:// into https on 2376 by default', () => {
  const e = resolveEndpoint({ DOCKER_HOST: 'tcp://docker.example', DOCKER_TLS_VERIFY: '1' });
  assert.equal(e.options, { host: 'docker.example', port: 2376, protocol: 'https' });
  assert.is(e.local, false);
});

test('ssh:// keeps user and port, uses the agent and is not local', () => {
  const e = resolveEndpoint({ DOCKER_HOST: 'ssh://me@host:2222', SSH_AUTH_SOCK: '/run/agent.sock' });
  assert.is(e.options.protocol, 'ssh');
  assert.is(e.options.host, 'host');
  assert.is(e.options.username, 'me');
  assert.is(e.options.port, 2222);
  assert.equal(e.options.sshOptions, { agent: '/run/agent.sock' });
  assert.is(e.display, 'ssh://me@host:2222');
  assert.is(e.local, false);
  assert.is(resolveEndpoint({ DOCKER_HOST: 'ssh://host' }).options.port, 22);
});

test('the display string never carries a password', () => {
  const ssh = resolveEndpoint({ DOCKER_HOST: 'ssh://me:hunter2@host:2222' });
  assert.not.match(ssh.display, 'hunter2');
  assert.not.match(JSON.stringify(ssh.options), 'hunter2');
  const tcp = resolveEndpoint({ DOCKER_HOST: 'tcp://u:hunter2@1.2.3.4:2375' });
  assert.not.match(tcp.display, 'hunter2');
});

test('an unsupported scheme or a non-URL DOCKER_HOST throws naming DOCKER_HOST', () => {
  assert.throws(() => resolveEndpoint({ DOCKER_HOST: 'ftp://host' }), /DOCKER_HOST=ftp:\/\/host: unsupported scheme/);
  assert.throws(() => resolveEndpoint({ DOCKER_HOST: 'npipe:////./pipe/docker_engine' }), /unsupported scheme/);
  assert.throws(() => resolveEndpoint({ DOCKER_HOST: 'not a url' }), /DOCKER_HOST=not a url is not a URL/);
});

test.run();
