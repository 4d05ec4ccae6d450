/**
 * The `director` CLI as a user runs it: a real process per command, against a real server (real
 * Docker engine), with its own config directory.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { ADMIN_PASSWORD, call, startApi, type TestApi } from '../../helpers/api.ts';
import { CliUser, DIRECTOR_BIN, Follower, ROOT } from '../../helpers/cli.ts';
import { HubSockets, closedPort } from '../../helpers/sockets.ts';
import { BUSYBOX, eventually } from '../../helpers/runtime.ts';

const test = suite('cli');
let api: TestApi;
let user: CliUser;
let scratch: string;
const director = (args: string[], opts: Parameters<CliUser['run']>[1] = {}) => user.run(args, opts);

/** The single line a failed command prints, checked to be one line. */
const errorLine = (stderr: string) => {
  const lines = stderr.split('\n').filter(Boolean);
  assert.is(lines.length, 1, `expected one error line, got: ${stderr}`);
  return lines[0]!;
};

async function createSandbox(...extra: string[]): Promise<string> {
  const r = await director(['sandbox', 'create', '-q', '--image', BUSYBOX, '--memory', '64', ...extra]);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function createKey(name: string): Promise<string> {
  const r = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/api-keys', {
    token: api.adminToken,
    body: { name, scopes: ['sandboxes:read'] },
  });
  assert.is(r.status, 201, r.text);
  return r.body.data.id;
}

test.before(async () => {
  api = await startApi({ rateLimitSandbox: 100_000, rateLimitGeneral: 100_000, rateLimitAuth: 1000 });
  user = new CliUser();
  scratch = mkdtempSync(path.join(tmpdir(), 'director-cli-files-'));
});
test.after(async () => {
  user?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await api?.close();
});

test('login reads the password from stdin and keeps the tokens in a 0600 file in a 0700 directory', async () => {
  const bad = await director(['login', '--url', api.url, '--username', 'admin', '--password-stdin'], { input: 'wrong-password\n' });
  assert.is(bad.code, 1);
  assert.match(errorLine(bad.stderr), /^error: AUTHENTICATION_ERROR: /);
  const r = await director(['login', '--url', api.url, '--username', 'admin', '--password-stdin'], { input: `${ADMIN_PASSWORD}\n` });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '', 'login prints nothing on stdout');
  assert.match(r.stderr, /Logged in to .* as admin/);
  const file = path.join(user.configDir, 'config.json');
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.is(statSync(user.configDir).mode & 0o777, 0o700);
  const stored = readFileSync(file, 'utf8');
  assert.not.match(stored, ADMIN_PASSWORD, 'the password is never stored');
  const cfg = JSON.parse(stored) as Record<string, string>;
  assert.is(cfg.url, api.url);
  assert.ok(cfg.token && cfg.refreshToken);
  const who = await director(['whoami', '-o', 'json']);
  assert.is(who.code, 0, who.stderr);
  const me = JSON.parse(who.stdout) as { username: string; role: string; url: string };
  assert.is(me.username, 'admin');
  assert.is(me.role, 'admin');
  const table = await director(['whoami']);
  assert.match(table.stdout, /^User\s+admin$/m);
});

test('an expired access token is refreshed with the stored refresh token, and the new pair is stored', async () => {
  const file = path.join(user.configDir, 'config.json');
  const before = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  writeFileSync(file, JSON.stringify({ ...before, tokenExpiresAt: new Date(Date.now() - 1000).toISOString() }), { mode: 0o600 });
  const r = await director(['whoami', '-o', 'json']);
  assert.is(r.code, 0, r.stderr);
  const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  assert.is.not(after.refreshToken, before.refreshToken, 'the spent refresh token was replaced');
  assert.is.not(after.token, before.token);
  assert.ok(Date.parse(after.tokenExpiresAt!) > Date.now());
  assert.is(statSync(file).mode & 0o777, 0o600);
});

test('DIRECTOR_API_KEY works without a login; its scopes hold; no credentials at all is a usage error', async () => {
  const key = await call<{ data: { key: string } }>(api.url, 'POST', '/v1/api-keys', {
    token: api.adminToken,
    body: { name: 'cli-reader', scopes: ['sandboxes:read'] },
  });
  const reader = new CliUser({ DIRECTOR_URL: api.url, DIRECTOR_API_KEY: key.body.data.key });
  try {
    const ls = await reader.run(['sandbox', 'ls']);
    assert.is(ls.code, 0, ls.stderr);
    const create = await reader.run(['sandbox', 'create', '--image', BUSYBOX]);
    assert.is(create.code, 1);
    assert.match(errorLine(create.stderr), /^error: AUTHORIZATION_ERROR: /);
    const who = await reader.run(['whoami']);
    assert.match(who.stdout, /Credentials\s+API key/);
  } finally {
    reader.cleanup();
  }
  const nobody = new CliUser();
  try {
    const r = await nobody.run(['sandbox', 'ls', '--url', api.url]);
    assert.is(r.code, 2);
    assert.match(errorLine(r.stderr), /^error: not logged in to .*director login/);
  } finally {
    nobody.cleanup();
  }
});

test('workspace create and use: later commands act in the chosen workspace; one you are not in is refused', async () => {
  const created = await director(['workspace', 'create', 'cli-team', '-o', 'json']);
  assert.is(created.code, 0, created.stderr);
  const ws = (JSON.parse(created.stdout) as { id: string }).id;
  const use = await director(['workspace', 'use', 'cli-team']);
  assert.is(use.code, 0, use.stderr);
  const shown = await director(['workspace', '-o', 'json']);
  assert.is((JSON.parse(shown.stdout) as { workspace: string }).workspace, ws);
  const id = await createSandbox('--name', 'in-team');
  const here = await director(['sandbox', 'ls', '-o', 'json']);
  assert.equal(
    (JSON.parse(here.stdout) as { id: string }[]).map((s) => s.id),
    [id],
  );
  const elsewhere = await director(['sandbox', 'ls', '-o', 'json', '--workspace', 'default']);
  assert.not.ok(
    (JSON.parse(elsewhere.stdout) as { id: string }[]).some((s) => s.id === id),
    'the team sandbox showed up in default',
  );
  const refused = await director(['workspace', 'use', 'no-such-workspace']);
  assert.is(refused.code, 1);
  assert.match(errorLine(refused.stderr), /^error: AUTHORIZATION_ERROR: /);
  assert.is((await director(['sandbox', 'rm', id])).code, 0);
  assert.is((await director(['workspace', 'use', 'default'])).code, 0);
});

test('sandbox create, ls, get, stop and rm, printed as tables, JSON and YAML', async () => {
  const id = await createSandbox('--name', 'cli-one', '--label', 'team=blue', '--env', 'SECRET=hunter2', '--max-duration', '10m');
  assert.match(id, /^sbx_[A-Za-z0-9_-]{16}$/);
  const table = await director(['sandbox', 'ls']);
  assert.is(table.code, 0, table.stderr);
  assert.match(table.stdout, /^ID\s+NAME\s+IMAGE\s+STATUS\s+NETWORK\s+AGE$/m);
  assert.match(table.stdout, new RegExp(`^${id}\\s+cli-one\\s+${BUSYBOX}\\s+running\\s+none\\s+\\d+s$`, 'm'));
  const byLabel = JSON.parse((await director(['sandbox', 'ls', '--label', 'team=blue', '-o', 'json'])).stdout) as { id: string }[];
  assert.equal(
    byLabel.map((s) => s.id),
    [id],
  );
  const yaml = parseYaml((await director(['sandbox', 'ls', '--status', 'running', '-o', 'yaml'])).stdout) as { id: string }[];
  assert.ok(yaml.some((s) => s.id === id));
  const got = await director(['sandbox', 'get', id, '-o', 'json']);
  const info = JSON.parse(got.stdout) as { status: string; environmentKeys: string[]; resourceLimits: { maxDuration: number } };
  assert.is(info.status, 'running');
  assert.equal(info.environmentKeys, ['SECRET']);
  assert.is(info.resourceLimits.maxDuration, 600_000);
  assert.not.match(got.stdout, 'hunter2');
  const detail = await director(['sandbox', 'get', id]);
  assert.match(detail.stdout, /^Status\s+running$/m);
  assert.match(detail.stdout, /^Labels\s+team=blue$/m);
  const stop = await director(['sandbox', 'stop', id]);
  assert.is(stop.stdout, `sandbox ${id} stopped\n`);
  const rm = await director(['sandbox', 'rm', id, '-o', 'json']);
  assert.equal(JSON.parse(rm.stdout), [{ id, deleted: true }]);
  const gone = await director(['sandbox', 'get', id]);
  assert.is(gone.code, 1);
  assert.match(errorLine(gone.stderr), new RegExp(`^error: NOT_FOUND: sandbox ${id} not found \\(request req_`));
});

test('exec streams stdout and stderr to their own streams and exits with the command status', async () => {
  const id = await createSandbox();
  const r = await director(['sandbox', 'exec', id, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.is(r.code, 3);
  assert.is(r.stdout, 'out\n');
  assert.is(r.stderr, 'err\n');
  const io = await director(
    ['sandbox', 'exec', id, '-i', '-e', 'GREETING=hi', '-w', '/tmp', '--', 'sh', '-c', 'echo $GREETING $(pwd); cat'],
    {
      input: 'from stdin\n',
    },
  );
  assert.is(io.code, 0, io.stderr);
  assert.is(io.stdout, 'hi /tmp\nfrom stdin\n');
  const timedOut = await director(['sandbox', 'exec', id, '-t', '1s', '--', 'sleep', '30']);
  assert.is(timedOut.code, 124);
  assert.match(timedOut.stderr, /timed out after (?:\d+ms|\d+\.\d+s)/);
  const json = await director(['sandbox', 'exec', id, '-o', 'json', '--', 'sh', '-c', 'echo a; exit 5']);
  assert.is(json.code, 5);
  const result = JSON.parse(json.stdout) as { exitCode: number; stdout: string; timedOut: boolean };
  assert.equal([result.exitCode, result.stdout, result.timedOut], [5, 'a\n', false]);
  // Output arrives while the command still runs.
  const slow = new Follower(user.spawn(['sandbox', 'exec', id, '--', 'sh', '-c', 'echo first; sleep 4; echo second']));
  await slow.until((t) => t.includes('first'));
  assert.not.ok(slow.text.includes('second'), 'the first line waited for the end of the command');
  assert.is(await slow.exited, 0);
  assert.is(slow.text, 'first\nsecond\n');
  const usage = await director(['sandbox', 'exec', id]);
  assert.is(usage.code, 2);
  await director(['sandbox', 'rm', id]);
});

test('errors: one line with the API code and exit 1; command-line mistakes exit 2; help exits 0', async () => {
  const invalid = await director(['sandbox', 'create', '--image', 'NOT AN IMAGE']);
  assert.is(invalid.code, 1);
  assert.match(errorLine(invalid.stderr), /^error: VALIDATION_ERROR: Invalid image: /);
  const power = await director(['sandbox', 'create', '-f', '-'], { input: '{"image": "director/busybox:latest", "Privileged": true}' });
  assert.is(power.code, 1);
  assert.match(errorLine(power.stderr), /^error: VALIDATION_ERROR: .*[Pp]rivileged/);
  for (const args of [
    ['sandbox', 'create', '--memory', 'lots'],
    ['sandbox', 'frobnicate'],
    ['sandbox', 'get'],
    ['sandbox', 'ls', '-o', 'xml'],
    ['sandbox', 'ls', '--status', 'sleeping'],
    ['--no-such-flag'],
  ]) {
    const r = await director(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0]!, /^error: /, args.join(' '));
    assert.is(r.stdout, '');
  }
  const help = await director(['sandbox', 'exec', '--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /Usage: director sandbox exec \[options\] <id> <command\.\.\.>/);
  const port = await closedPort();
  const unreachable = await director(['sandbox', 'ls', '--url', `http://127.0.0.1:${port}`], { env: { DIRECTOR_API_KEY: 'dk_x' } });
  assert.is(unreachable.code, 1);
  assert.match(
    errorLine(unreachable.stderr),
    new RegExp(`^error: CONNECTION_ERROR: cannot reach http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
  );
});

test('cp copies a directory tree into a sandbox and back out, contents and modes kept', async () => {
  const id = await createSandbox();
  const src = path.join(scratch, 'app');
  mkdirSync(path.join(src, 'sub'), { recursive: true });
  writeFileSync(path.join(src, 'run.sh'), '#!/bin/sh\necho ran\n');
  chmodSync(path.join(src, 'run.sh'), 0o755);
  writeFileSync(path.join(src, 'sub', 'data.txt'), 'payload\n');
  const put = await director(['sandbox', 'cp', src, `${id}:/workspace/app`]);
  assert.is(put.code, 0, put.stderr);
  assert.is(put.stdout, '');
  const ran = await director(['sandbox', 'exec', id, '--', '/workspace/app/run.sh']);
  assert.is(ran.stdout, 'ran\n', 'the executable bit survived the copy in');
  const one = await director(['sandbox', 'cp', path.join(src, 'sub', 'data.txt'), `${id}:/workspace/`]);
  assert.is(one.code, 0, one.stderr);
  assert.is((await director(['sandbox', 'exec', id, '--', 'cat', '/workspace/data.txt'])).stdout, 'payload\n');
  const out = path.join(scratch, 'back');
  const get = await director(['sandbox', 'cp', `${id}:/workspace/app`, out, '-o', 'json']);
  assert.is(get.code, 0, get.stderr);
  assert.equal((JSON.parse(get.stdout) as { files: number }).files, 2);
  assert.is(readFileSync(path.join(out, 'sub', 'data.txt'), 'utf8'), 'payload\n');
  assert.is(statSync(path.join(out, 'run.sh')).mode & 0o777, 0o755);
  // Into an existing directory: the copy keeps its own name, as docker cp does.
  const into = await director(['sandbox', 'cp', `${id}:/workspace/data.txt`, scratch]);
  assert.is(into.code, 0, into.stderr);
  assert.is(readFileSync(path.join(scratch, 'data.txt'), 'utf8'), 'payload\n');
  const missing = await director(['sandbox', 'cp', `${id}:/workspace/nope`, path.join(scratch, 'x')]);
  assert.is(missing.code, 1);
  assert.match(errorLine(missing.stderr), /^error: NOT_FOUND: nothing at \/workspace\/nope in sbx_/);
  await director(['sandbox', 'rm', id]);
});

test('events tail shows the newest events; -f follows live and resumes after a dropped connection, nothing lost or repeated', async () => {
  const keys = [await createKey('tail-1'), await createKey('tail-2'), await createKey('tail-3')];
  const keyOf = (line: string) => (JSON.parse(line) as { details: { keyId: string } }).details.keyId;
  const last2 = await director(['events', 'tail', '-n', '2', '--type', 'api_key_created', '-o', 'json']);
  assert.is(last2.code, 0, last2.stderr);
  assert.equal(last2.stdout.split('\n').filter(Boolean).map(keyOf), keys.slice(1));
  const table = await director(['events', 'tail', '-n', '1', '--type', 'api_key_created']);
  assert.match(table.stdout, /^TIME\s+SEVERITY\s+TYPE\s+SANDBOX\s+DETAILS$/m);
  assert.match(table.stdout, new RegExp(`info\\s+api_key_created .*${keys[2]}`));

  const hub = new HubSockets(api);
  const follow = new Follower(user.spawn(['events', 'tail', '-f', '-n', '1', '--type', 'api_key_created', '-o', 'json']));
  await follow.until(() => follow.lines().length === 1);
  await eventually(() => hub.open === 1);
  keys.push(await createKey('live-4'));
  await follow.until(() => follow.lines().length === 2);
  // Drop the connection as a network failure would, then make events while the client is away.
  hub.dropAll();
  keys.push(await createKey('gap-5'), await createKey('gap-6'));
  await eventually(() => hub.connections === 2 && hub.open === 1);
  keys.push(await createKey('after-7'));
  await follow.until(() => follow.lines().length >= 5);
  assert.equal(follow.lines().map(keyOf), keys.slice(2), 'every event once, in order');
  follow.signal('SIGINT');
  assert.is(await follow.exited, 0);
});

test('events export writes NDJSON with its OCSF mapping, to stdout or a 0600 file', async () => {
  const r = await director(['events', 'export', '--since', '1h', '--type', 'api_key_created']);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; schemaVersion: string });
  const stored = await call<{ data: { items: unknown[] } }>(api.url, 'GET', '/v1/security/events?type=api_key_created&limit=1000', {
    token: api.adminToken,
  });
  assert.is(lines.length, stored.body.data.items.length);
  assert.ok(lines.length >= 7, `${lines.length} lines`);
  assert.ok(lines.every((l) => l.type === 'api_key_created' && l.schemaVersion === '1.0'));
  const file = path.join(scratch, 'events.ndjson');
  const toFile = await director(['events', 'export', '--type', 'api_key_created', '--file', file]);
  assert.is(toFile.code, 0, toFile.stderr);
  assert.is(toFile.stdout, '');
  assert.is(readFileSync(file, 'utf8'), r.stdout);
  assert.is(statSync(file).mode & 0o777, 0o600);
});

test('audit verify exits 0 on the intact chain, and 1 naming the entry once one was edited', async () => {
  const ok = await director(['audit', 'verify']);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^Chain\s+ok$/m);
  const ls = await director(['audit', 'ls', '--action', 'POST /v1/sandboxes', '-o', 'json']);
  assert.ok((JSON.parse(ls.stdout) as { items: unknown[] }).items.length > 0);
  const row = api.rt.db.sql.prepare('SELECT seq, status FROM audit_log ORDER BY seq LIMIT 1 OFFSET 2').get() as {
    seq: number;
    status: number;
  };
  api.rt.db.sql.prepare('UPDATE audit_log SET status = ? WHERE seq = ?').run(299, row.seq);
  try {
    const broken = await director(['audit', 'verify']);
    assert.is(broken.code, 1);
    assert.match(
      errorLine(broken.stderr),
      new RegExp(`^error: AUDIT_CHAIN_BROKEN: the audit chain is broken at seq ${row.seq} .*hash_mismatch`),
    );
    const json = await director(['audit', 'verify', '-o', 'json']);
    assert.is(json.code, 1);
    assert.is((JSON.parse(json.stdout) as { ok: boolean }).ok, false);
  } finally {
    api.rt.db.sql.prepare('UPDATE audit_log SET status = ? WHERE seq = ?').run(row.status, row.seq);
  }
});

test('bash completion completes commands, options and live sandbox ids', async () => {
  const id = await createSandbox();
  const bin = path.join(scratch, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(path.join(bin, 'director'), `#!/bin/sh\nexec "${process.execPath}" "${DIRECTOR_BIN}" "$@"\n`, { mode: 0o755 });
  const script = (await director(['completion', 'bash'])).stdout;
  writeFileSync(path.join(scratch, 'completion.bash'), script);
  const completeWords = (words: string[]) =>
    new Promise<string[]>((resolve, reject) => {
      const quoted = words.map((w) => `'${w}'`).join(' ');
      const child = spawn(
        'bash',
        [
          '-c',
          `source completion.bash; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _director_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { cwd: scratch, env: { ...user.env, PATH: `${bin}:${process.env.PATH}` } },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(out.split('\n').filter(Boolean)));
    });
  assert.equal(await completeWords(['director', 'sand']), ['sandbox']);
  assert.equal(await completeWords(['director', 'sandbox', 'ex']), ['exec']);
  assert.ok((await completeWords(['director', 'sandbox', 'ls', '--st'])).includes('--status'));
  assert.ok((await completeWords(['director', 'sandbox', 'get', ''])).includes(id), 'the live sandbox id was offered');
  await director(['sandbox', 'rm', id]);
});

test("npx director runs the repository's own command without the package registry", async () => {
  const r = await new Promise<{ code: number; out: string }>((resolve, reject) => {
    const child = spawn('npx', ['--offline', 'director', '--version'], {
      cwd: path.join(ROOT, 'test'),
      env: { ...user.env, npm_config_registry: 'http://127.0.0.1:9/', npm_config_update_notifier: 'false' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
  assert.is(r.code, 0, r.out);
  assert.is(r.out.trim(), '0.1.0');
});

test.run();
