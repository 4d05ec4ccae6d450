/** Files in and out of sandboxes; what comes back is hostile. */
import { mkdtempSync, readdirSync, rmSync, symlinkSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import tar from 'tar-stream';
import { extractToHost } from '../../runtime/sandbox/files.ts';
import { caller, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('files');
let rt: TestRuntime;
let host: string;

test.before(async () => {
  rt = testRuntime({ fileMaxBytes: 1_048_576 });
  await rt.start();
  host = mkdtempSync(path.join(tmpdir(), 'director-files-'));
});
test.after(async () => {
  await rt.cleanup();
  rmSync(host, { recursive: true, force: true });
});

const sh = (id: string, script: string) => rt.executor.run(caller, id, { command: ['sh', '-c', script] });

function tarOf(files: Record<string, string>): Readable {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name }, content);
  pack.finalize();
  return pack as unknown as Readable;
}

test('a file uploaded to a tmpfs path of a read-only sandbox reads back byte for byte', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  const content = 'héllo\nworld\u0000binary';
  await rt.files.upload(caller, sb.id, '/workspace/a.txt', Readable.from([Buffer.from(content)]), 'file');
  const got = await rt.files.downloadFile(caller, sb.id, '/workspace/a.txt');
  assert.is(got.content.toString(), content);
  assert.is((await sh(sb.id, 'stat -c %u /workspace/a.txt')).stdout.trim(), '1000');
});

test('a tar upload extracts into a directory; a directory downloads as a guarded tar', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  await rt.files.upload(caller, sb.id, '/workspace', tarOf({ 'src/main.py': 'print(1)\n', README: 'hi\n' }), 'tar');
  assert.is((await sh(sb.id, 'cat /workspace/src/main.py /workspace/README')).stdout, 'print(1)\nhi\n');
  const out = path.join(host, 'dl1');
  mkdirSync(out);
  const written = await extractToHost(await rt.files.downloadTar(caller, sb.id, '/workspace/src'), out, { maxBytes: 1e6, maxEntries: 100 });
  assert.ok(written.includes('src/main.py'));
});

test('uploads cannot write outside what the sandbox user may write', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  try {
    await rt.files.upload(caller, sb.id, '/etc/passwd', Readable.from([Buffer.from('x')]), 'file');
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'UNPROCESSABLE');
  }
  assert.match((await sh(sb.id, 'cat /etc/passwd')).stdout, 'sandbox:x:1000');
});

test('an upload over the size cap is refused with 413 semantics', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  try {
    await rt.files.upload(caller, sb.id, '/tmp/big', Readable.from([Buffer.alloc(2_000_000)]), 'file');
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'PAYLOAD_TOO_LARGE');
  }
});

test('a download with a planted symlink is refused and leaves the host untouched', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  const outside = path.join(host, 'outside');
  mkdirSync(outside);
  // The sandbox plants links pointing at host paths, hoping a client follows them.
  await sh(
    sb.id,
    `mkdir -p /workspace/loot && echo data > /workspace/loot/a && ln -s ${outside} /workspace/loot/evil && ln -s /etc/shadow /workspace/shadow`,
  );
  try {
    await rt.files.downloadFile(caller, sb.id, '/workspace/shadow');
    assert.unreachable('a symlink must not be served as a file');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'UNPROCESSABLE');
  }
  const dest = path.join(host, 'dl2');
  mkdirSync(dest);
  // The host side also has a planted link with the name the archive uses.
  symlinkSync(outside, path.join(dest, 'loot'));
  try {
    await extractToHost(await rt.files.downloadTar(caller, sb.id, '/workspace/loot'), dest, { maxBytes: 1e6, maxEntries: 100 });
    assert.unreachable('the archive must be refused');
  } catch (err) {
    assert.ok(['UNSAFE_ARCHIVE', 'NOT_A_FILE'].includes((err as { code?: string }).code ?? ''), String(err));
  }
  assert.equal(readdirSync(outside), []);
  assert.not.ok(existsSync(path.join(host, 'a')));
});

test('kernel filesystems are not reachable through the files API', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  for (const p of ['/proc/self/environ', '/sys/kernel', '/dev/mem']) {
    try {
      await rt.files.downloadFile(caller, sb.id, p);
      assert.unreachable(p);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'VALIDATION_ERROR');
    }
  }
});

test.run();
