/**
 * After a pooled sandbox's tmpfs mounts are resized, the container's mount table must show exactly
 * what a cold sandbox gets, or the fit is refused. The lines are from a real container's
 * /proc/PID/mountinfo (Docker with `--tmpfs`), altered one property at a time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TmpfsMount } from '../../../runtime/engine/engine.ts';
import { checkMountinfo } from '../../../runtime/sandbox/tmpfs-size.ts';

const CID = '07e8aa3e47482485d1490f4ad9f8d52af41dee1610958e8e221948109b0e25e7';
const ROOT =
  '279 143 0:104 / / ro,relatime master:7 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/WZIQ:/var/lib/docker/overlay2/l/LIE5';
const TMP = '297 279 0:114 / /tmp rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=51200k';
const WORKSPACE = '298 279 0:115 / /workspace rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=1000k,uid=1000,gid=1000';
const RO = '296 279 0:113 / /data ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=4096k';
const OTHERS = [
  '280 279 0:107 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
  '281 279 0:108 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755',
  '295 281 0:112 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k',
  `299 279 254:0 /var/lib/docker/containers/${CID}/hosts /etc/hosts ro,relatime - ext4 /dev/vda rw,discard`,
];
const table = (...lines: string[]) => [ROOT, ...OTHERS, ...lines, ''].join('\n');

const tmp: TmpfsMount = { path: '/tmp', sizeBytes: 50 * 1024 * 1024, noexec: true };
const workspace: TmpfsMount = { path: '/workspace', sizeBytes: 1000 * 1024, noexec: false, uid: 1000, gid: 1000 };
const data: TmpfsMount = { path: '/data', sizeBytes: 4 * 1024 * 1024, noexec: true, readOnly: true };

test('the mount table of a correctly resized sandbox passes', () => {
  assert.equal(checkMountinfo(table(TMP, WORKSPACE, RO), [tmp, workspace, data]), []);
  // The kernel shows sizes in whole pages (KiB): a size that is not a page multiple is rounded up.
  assert.equal(checkMountinfo(table(WORKSPACE), [{ ...workspace, sizeBytes: 1000 * 1024 - 100 }]), []);
});

test('a missing mount is refused', () => {
  assert.equal(checkMountinfo(table(TMP), [tmp, workspace]), ['/workspace is not a tmpfs mount']);
  // A longer path sharing the prefix is another mount.
  assert.equal(checkMountinfo(table(TMP.replace(' /tmp ', ' /tmpx ')), [tmp]), ['/tmp is not a tmpfs mount']);
});

test('a mount of another filesystem type at the path is refused', () => {
  assert.equal(checkMountinfo(table(), [{ path: '/etc/hosts', sizeBytes: 4096, noexec: true }]), ['/etc/hosts is not a tmpfs mount']);
  const overlayTmp = '297 279 0:114 / /tmp rw,nosuid,nodev,noexec,relatime - overlay overlay rw,size=51200k';
  assert.equal(checkMountinfo(table(overlayTmp), [tmp]), ['/tmp is not a tmpfs mount']);
});

test('a mount lacking nosuid or nodev is refused', () => {
  assert.equal(checkMountinfo(table(TMP.replace('rw,nosuid,nodev,', 'rw,nodev,')), [tmp]), ['/tmp lacks nosuid']);
  assert.equal(checkMountinfo(table(TMP.replace('rw,nosuid,nodev,', 'rw,nosuid,')), [tmp]), ['/tmp lacks nodev']);
  // The superblock's options do not stand in for the mount's own.
  const both = '297 279 0:114 / /tmp rw,noexec,relatime - tmpfs tmpfs rw,nosuid,nodev,size=51200k';
  assert.equal(checkMountinfo(table(both), [tmp]), ['/tmp lacks nosuid', '/tmp lacks nodev']);
});

test('noexec must be exactly as asked: missing where execution is not allowed, present where it is', () => {
  assert.equal(checkMountinfo(table(TMP.replace('noexec,', '')), [tmp]), ['/tmp noexec=false, expected true']);
  assert.equal(checkMountinfo(table(WORKSPACE.replace('nodev,', 'nodev,noexec,')), [workspace]), [
    '/workspace noexec=true, expected false',
  ]);
});

test('a size other than the one asked is refused, larger or smaller', () => {
  assert.equal(checkMountinfo(table(TMP), [{ ...tmp, sizeBytes: 100 * 1024 * 1024 }]), ['/tmp size is not 102400k']);
  assert.equal(checkMountinfo(table(TMP.replace('size=51200k', 'size=51204k')), [tmp]), ['/tmp size is not 51200k']);
  // No size at all (half of RAM) is not the asked size either.
  assert.equal(checkMountinfo(table(TMP.replace(',size=51200k', '')), [tmp]), ['/tmp size is not 51200k']);
});

test('read-only and read-write must be as asked', () => {
  assert.equal(checkMountinfo(table(TMP.replace(' rw,nosuid', ' ro,nosuid')), [tmp]), ['/tmp lacks rw']);
  assert.equal(checkMountinfo(table(RO.replace(' ro,nosuid', ' rw,nosuid')), [data]), ['/data lacks ro']);
});

test('every problem of every mount is reported', () => {
  const bad = '297 279 0:114 / /tmp ro,relatime - tmpfs tmpfs rw,size=4k';
  assert.equal(checkMountinfo(table(bad), [tmp, workspace]), [
    '/tmp lacks nosuid',
    '/tmp lacks nodev',
    '/tmp lacks rw',
    '/tmp noexec=false, expected true',
    '/tmp size is not 51200k',
    '/workspace is not a tmpfs mount',
  ]);
});

test('a mount stacked over another at the same path: the later (top) one decides', () => {
  const under = TMP.replace('297 279', '290 279');
  const over = '310 297 0:120 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=51200k';
  assert.equal(checkMountinfo(table(under, over), [tmp]), ['/tmp noexec=false, expected true']);
});

test('malformed lines are ignored rather than thrown on', () => {
  const junk = ['garbage', ' - tmpfs', '1 2 - tmpfs tmpfs rw', '297 279 0:114 / /tmp', 'a b c d e - '].join('\n');
  assert.equal(checkMountinfo(`${junk}\n${table(TMP)}`, [tmp]), []);
  assert.equal(checkMountinfo(junk, [tmp]), ['/tmp is not a tmpfs mount']);
});

test.run();
