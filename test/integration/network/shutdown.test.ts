/**
 * What the network layer leaves running after the runtime closes: the firewall owns the netlink
 * helper processes that carry policy changes, and the runtime's close ends them.
 */
import { execFileSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { caller, eventually, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('network shutdown');
let rt: TestRuntime | undefined;

test.after(async () => {
  await rt?.cleanup();
});

/** This process's children running the netlink helper (`perl -e ...`). */
function helperChildren(): string[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => /^\s*\d+\s+perl -e /.test(l));
}

test("a policy change starts the firewall's netlink helper; the runtime's close ends it", async () => {
  assert.equal(helperChildren(), [], 'a helper was running before the runtime started');
  rt = testRuntime({ networking: 'on' });
  await rt.start();
  const n = await rt.networks!.manager.create(caller, { name: 'helper', enableDNS: false });
  await rt.networks!.manager.applyPolicy(caller, n.id, {
    name: 'p',
    outbound: [{ action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32', port: 443 }],
  });
  assert.is(helperChildren().length, 1, 'the policy change did not go through a netlink helper');
  await rt.close();
  await eventually(() => helperChildren().length === 0, 5000, 50);
});

test.run();
