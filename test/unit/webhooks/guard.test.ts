import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkUrl,
  closedPolicy,
  parseCidrList,
  resolveChecked,
  TargetRefusedError,
  type TargetPolicy,
} from '../../../runtime/webhooks/guard.ts';
import { checkEventName } from '../../../runtime/webhooks/catalogue.ts';

const issueOf = (url: string, policy: TargetPolicy = closedPolicy): string | null => {
  const r = checkUrl(url, policy);
  return 'issue' in r ? r.issue : null;
};

const ALLOWED = [
  'http://203.0.113.5/hook',
  'https://203.0.113.5:8443/hook?token=x',
  'https://[2001:db8::5]/hook',
  'https://hooks.example.com/director',
  'http://8.8.8.8/',
  'http://[::ffff:203.0.113.5]/', // mapped, but of a public address
  'http://172.32.0.1/', // just past 172.16/12
  'http://100.128.0.1/', // just past 100.64/10
];

const FORBIDDEN: [string, RegExp][] = [
  ['http://127.0.0.1/', /loopback/],
  ['http://127.255.255.254:9/', /loopback/],
  ['http://2130706433/', /127\.0\.0\.1 is a loopback/], // decimal spelling, normalized by the URL parser
  ['http://0x7f.1/', /loopback/],
  ['http://[::1]/', /loopback/],
  ['http://localhost:8080/', /loopback name/],
  ['http://api.localhost/', /loopback name/],
  ['http://169.254.169.254/latest/meta-data/', /metadata/],
  ['http://169.254.170.2/v2/credentials', /metadata/],
  ['http://[fd00:ec2::254]/', /metadata/],
  ['http://100.100.100.200/', /metadata/],
  ['http://169.254.1.1/', /link-local/],
  ['http://[fe80::1]/', /link-local/],
  ['http://10.0.0.1/', /private/],
  ['http://172.16.0.1/', /private/],
  ['http://172.31.255.255/', /private/],
  ['http://192.168.1.1/', /private/],
  ['http://[fc00::1]/', /private/],
  ['http://[fd12:3456::1]/', /private/],
  ['http://100.64.0.1/', /cgnat/],
  ['http://100.127.255.255/', /cgnat/],
  ['http://0.0.0.0:8080/', /unspecified/],
  ['http://0.1.2.3/', /unspecified/],
  ['http://[::]/', /unspecified/],
  ['http://224.0.0.1/', /multicast/],
  ['http://239.255.255.250/', /multicast/],
  ['http://[ff02::1]/', /multicast/],
  ['http://255.255.255.255/', /reserved/],
  ['http://[::ffff:127.0.0.1]/', /embeds 127\.0\.0\.1\) is a loopback/],
  ['http://[::ffff:7f00:1]/', /loopback/],
  ['http://[::ffff:169.254.169.254]/', /metadata/],
  ['http://[::ffff:10.0.0.1]/', /private/],
  ['http://[::10.0.0.1]/', /private/], // IPv4-compatible
  ['http://[64:ff9b::a9fe:a9fe]/', /metadata/], // NAT64 of 169.254.169.254
  ['http://[2002:a00:1::]/', /private/], // 6to4 of 10.0.0.1
  ['http://user:pass@203.0.113.5/', /credentials/],
  ['http://user@203.0.113.5/', /credentials/],
  ['ftp://203.0.113.5/', /scheme ftp/],
  ['file:///etc/passwd', /scheme file/],
  ['gopher://203.0.113.5/', /scheme gopher/],
  ['not a url', /absolute URL/],
  ['/relative', /absolute URL/],
];

test('public targets pass', () => {
  for (const url of ALLOWED) assert.is(issueOf(url), null, url);
});

test('every forbidden range, spelling and scheme is refused, with the reason', () => {
  for (const [url, why] of FORBIDDEN) {
    const issue = issueOf(url);
    assert.ok(issue, `${url} was allowed`);
    assert.match(issue, why, `${url}: ${issue}`);
  }
});

test('allowPrivateTargets opens loopback, private, link-local and CGNAT, but not metadata or multicast', () => {
  const policy: TargetPolicy = { allowPrivateTargets: true, allowedTargetCidrs: [] };
  for (const url of [
    'http://127.0.0.1:9/',
    'http://[::1]/',
    'http://10.0.0.1/',
    'http://192.168.1.1/',
    'http://100.64.0.1/',
    'http://169.254.1.1/',
    'http://[fd12::1]/',
    'http://localhost/',
  ]) {
    assert.is(issueOf(url, policy), null, url);
  }
  for (const url of [
    'http://169.254.169.254/',
    'http://[fd00:ec2::254]/',
    'http://224.0.0.1/',
    'http://0.0.0.0/',
    'ftp://10.0.0.1/',
    'http://u:p@10.0.0.1/',
  ]) {
    assert.ok(issueOf(url, policy), url);
  }
});

test('allowedTargetCidrs opens exactly the ranges named, mapped forms included', () => {
  const policy: TargetPolicy = { allowPrivateTargets: false, allowedTargetCidrs: parseCidrList('127.0.0.0/8, 169.254.169.254/32', 'X') };
  for (const url of ['http://127.0.0.1:9/', 'http://127.9.9.9/', 'http://[::ffff:127.0.0.1]/', 'http://169.254.169.254/'])
    assert.is(issueOf(url, policy), null, url);
  for (const url of ['http://[::1]/', 'http://10.0.0.1/', 'http://169.254.169.253/', 'http://0.0.0.0/'])
    assert.ok(issueOf(url, policy), url);
});

test('a bad CIDR in the operator list is refused, naming the variable', () => {
  assert.throws(
    () => parseCidrList('127.0.0.0/8,10.1.2.3/8', 'DIRECTOR_WEBHOOK_ALLOWED_CIDRS'),
    /DIRECTOR_WEBHOOK_ALLOWED_CIDRS: "10\.1\.2\.3\/8" has host bits/,
  );
  assert.throws(() => parseCidrList('nope', 'DIRECTOR_WEBHOOK_ALLOWED_CIDRS'), /DIRECTOR_WEBHOOK_ALLOWED_CIDRS/);
});

test('a name is refused when any address it resolves to is forbidden', async () => {
  const lookup = async (name: string) =>
    name === 'mixed.test'
      ? [
          { address: '203.0.113.5', family: 4 },
          { address: '::ffff:10.0.0.1', family: 6 },
        ]
      : [{ address: '203.0.113.9', family: 4 }];
  await resolveChecked('public.test', closedPolicy, lookup);
  try {
    await resolveChecked('mixed.test', closedPolicy, lookup);
    assert.unreachable('mixed.test was allowed');
  } catch (err) {
    assert.instance(err, TargetRefusedError);
    assert.match(
      (err as Error).message,
      /mixed\.test resolves to a forbidden address: ::ffff:a00:1 \(embeds 10\.0\.0\.1\) is a private address/,
    );
  }
});

test('event names are checked against the catalogue', () => {
  for (const ok of [
    '*',
    'sandbox.created',
    'sandbox.exited',
    'security.alert',
    'security.event',
    'security.egress_denied',
    'session.created',
    'workflow.completed',
  ]) {
    assert.is(checkEventName(ok), null, ok);
  }
  assert.match(checkEventName('sandbox.craeted') ?? '', /unknown event/);
  assert.match(checkEventName('security.sandbox_created') ?? '', /delivered as sandbox\.created/);
  assert.match(checkEventName('security.security_alert') ?? '', /delivered as security\.alert/);
  assert.match(checkEventName('Security.Event') ?? '', /unknown event/);
});

test.run();
