import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  approvalNeeded,
  argumentsMatch,
  bindingMatches,
  canonicalJson,
  coveringRule,
  DEFAULT_POLICY,
  globMatch,
  inputHash,
  type AutoApproveRule,
} from '../../../orchestration/approvals/policy.ts';

test('globs match the whole text: * any run (newlines too), ? one character, everything else literally', () => {
  assert.ok(globMatch('rm *', 'rm -rf /'));
  assert.not.ok(globMatch('rm *', 'echo; rm -rf /'), 'anchored at the start');
  assert.ok(globMatch('*rm *', 'echo; rm -rf /'));
  assert.not.ok(globMatch('ls', 'ls -la'), 'anchored at the end');
  assert.ok(globMatch('ls?-la', 'ls -la'));
  assert.ok(globMatch('*', ''));
  assert.ok(globMatch('a*b*c', 'a\nxxb\nc'));
  assert.not.ok(globMatch('a*b*c', 'a\nxxb\nd'));
  assert.ok(globMatch('[x]', '[x]'), 'brackets are literal, not a class');
  assert.not.ok(globMatch('.*', 'anything'), 'dots are literal, not a regex');
});

test('a hostile argument cannot make a pattern take exponential time', () => {
  const text = `${'a'.repeat(20_000)}b`;
  const started = performance.now();
  assert.not.ok(globMatch('*a*a*a*a*a*a*a*a*c', text));
  // A backtracking regex would take years; a linear-ish walk takes milliseconds. Generous bound on a shared machine.
  assert.ok(performance.now() - started < 5000);
});

test('always and never decide every call', () => {
  assert.equal(approvalNeeded('always', 'read_file', { path: 'x' }), { required: true, by: 'always' });
  assert.equal(approvalNeeded('never', 'execute', { command: 'rm -rf /' }), { required: false, by: 'never' });
});

test('the default policy lets reads run and holds execute and write_file', () => {
  assert.is(approvalNeeded(DEFAULT_POLICY, 'read_file', { path: '/etc/hosts' }).required, false);
  assert.is(approvalNeeded(DEFAULT_POLICY, 'list_files', {}).required, false);
  assert.is(approvalNeeded(DEFAULT_POLICY, 'execute', { command: 'ls' }).required, true);
  assert.is(approvalNeeded(DEFAULT_POLICY, 'write_file', { path: 'a', content: '' }).required, true);
});

test('rules: the first rule whose tool and argument patterns match decides; otherwise applies after', () => {
  const policy = {
    rules: [
      { tool: 'execute', match: { command: 'rm *' }, approval: 'required' as const },
      { tool: 'execute', match: { command: 'ls*' }, approval: 'none' as const },
      { tool: '*', approval: 'none' as const },
    ],
  };
  assert.equal(approvalNeeded(policy, 'execute', { command: 'rm -rf /tmp' }), { required: true, by: 'rules[0]' });
  assert.equal(approvalNeeded(policy, 'execute', { command: 'ls -la' }), { required: false, by: 'rules[1]' });
  assert.equal(approvalNeeded(policy, 'read_file', { path: '/x' }), { required: false, by: 'rules[2]' });
  assert.equal(approvalNeeded({ rules: [] }, 'read_file', {}), { required: true, by: 'otherwise' }, 'otherwise defaults to required');
  assert.equal(approvalNeeded({ rules: [], otherwise: 'none' }, 'execute', {}), { required: false, by: 'otherwise' });
});

test('argument patterns: strings as they are, other values as JSON, missing as empty; all must match', () => {
  assert.ok(argumentsMatch({ timeoutMs: '5000' }, { command: 'x', timeoutMs: 5000 }));
  assert.ok(argumentsMatch({ a: '{"b":1}' }, { a: { b: 1 } }));
  assert.ok(argumentsMatch({ missing: '*' }, {}));
  assert.not.ok(argumentsMatch({ missing: '?*' }, {}));
  assert.not.ok(argumentsMatch({ command: 'ls*', timeoutMs: '1' }, { command: 'ls', timeoutMs: 2 }));
  assert.ok(argumentsMatch(null, { anything: 1 }));
  assert.not.ok(argumentsMatch({ command: '?' }, ['x']), 'a non-object input has no arguments');
});

test('input hashes ignore key order and differ with any value', () => {
  assert.is(inputHash({ a: 1, b: { c: [1, 2], d: 'x' } }), inputHash({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  assert.is.not(inputHash({ command: 'ls' }), inputHash({ command: 'ls ' }));
  assert.is.not(inputHash({ a: [1, 2] }), inputHash({ a: [2, 1] }));
  assert.match(inputHash({}), /^sha256:[0-9a-f]{64}$/);
  assert.is(canonicalJson({ b: undefined, a: null }), '{"a":null}');
});

test('an approval opens only the call it was made for: same tool, call id and input', () => {
  const approval = { tool: 'execute', callId: 'call_1', inputHash: inputHash({ command: 'ls' }) };
  assert.ok(bindingMatches(approval, { tool: 'execute', callId: 'call_1', input: { command: 'ls' } }));
  assert.not.ok(bindingMatches(approval, { tool: 'execute', callId: 'call_2', input: { command: 'ls' } }), 'another call');
  assert.not.ok(bindingMatches(approval, { tool: 'execute', callId: 'call_1', input: { command: 'rm -rf /' } }), 'another input');
  assert.not.ok(bindingMatches(approval, { tool: 'write_file', callId: 'call_1', input: { command: 'ls' } }), 'another tool');
});

const rule = (over: Partial<AutoApproveRule>): AutoApproveRule => ({
  id: 'aar_x',
  workspace: 'w',
  agentId: 'agt_a',
  tool: 'execute',
  match: null,
  scope: 'permanent',
  sessionId: null,
  createdBy: null,
  createdMs: 0,
  ...over,
});

test('auto-approve rules cover their agent and tool, a session rule only its session, a match only matching calls', () => {
  const call = { agentId: 'agt_a', sessionId: 'ses_1', tool: 'execute', input: { command: 'make test' } };
  assert.is(coveringRule([rule({})], call)?.id, 'aar_x');
  assert.is(coveringRule([rule({ agentId: 'agt_b' })], call), null, 'another agent');
  assert.is(coveringRule([rule({ tool: 'write_file' })], call), null, 'another tool');
  assert.is(coveringRule([rule({ tool: '*' })], call)?.id, 'aar_x');
  assert.is(coveringRule([rule({ scope: 'session', sessionId: 'ses_2' })], call), null, 'a session rule of another session');
  assert.is(coveringRule([rule({ scope: 'session', sessionId: 'ses_1' })], call)?.id, 'aar_x');
  assert.is(coveringRule([rule({ match: { command: 'make *' } })], call)?.id, 'aar_x');
  assert.is(coveringRule([rule({ match: { command: 'rm *' } })], call), null);
});

test.run();
