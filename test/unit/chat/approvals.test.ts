import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { openDb } from '../../../core/db.ts';
import { createEventSink } from '../../../runtime/events.ts';
import { ApprovalService, type GateCall, type GateResult } from '../../../orchestration/approvals/service.ts';
import { ApprovalStore, type ApprovalRecord } from '../../../orchestration/approvals/store.ts';
import { storing } from '../../helpers/sink.ts';

const caller = { workspace: 'wsp_t', actor: 'usr_alice' };
const other = { workspace: 'wsp_other', actor: 'usr_eve' };

function setup() {
  const db = openDb('/tmp/x', ':memory:');
  const clock = { nowMs: () => 1_000_000 };
  const events = storing(createEventSink(db, clock));
  const timers: (() => void)[] = [];
  const svc = new ApprovalService({
    store: new ApprovalStore(db),
    events,
    clock,
    logger: pino({ level: 'silent' }),
    timeoutMs: 60_000,
    agentOf: (c, id) => {
      if (c.workspace !== caller.workspace || id !== 'agt_aaaaaaaaaaaaaaaa') throw new Error('no agent');
      return { id, sessionId: 'ses_1' };
    },
    // Timers fire only when the test says so.
    setTimer: (fn) => {
      timers.push(fn);
      return () => {
        const i = timers.indexOf(fn);
        if (i >= 0) timers.splice(i, 1);
      };
    },
  });
  return { db, events, svc, timers };
}

const call = (over: Partial<GateCall> = {}): GateCall => ({
  workspace: caller.workspace,
  sessionId: 'ses_1',
  agentId: 'agt_aaaaaaaaaaaaaaaa',
  turnId: 'trn_1',
  callId: 'call_1',
  tool: 'execute',
  input: { command: 'make test' },
  shownInput: { command: 'make test' },
  policy: 'always',
  ...over,
});

/** Starts a gate and waits until its approval record exists (the pending callback). */
async function pending(
  svc: ApprovalService,
  c: GateCall,
  signal?: AbortSignal,
): Promise<{ rec: ApprovalRecord; result: Promise<GateResult> }> {
  let rec: ApprovalRecord | null = null;
  const result = svc.gate(c, (r) => (rec = r), signal);
  await Promise.resolve();
  assert.ok(rec, 'the call is pending');
  return { rec: rec, result };
}

test('a call the policy does not hold runs without a record', async () => {
  const { svc } = setup();
  const r = await svc.gate(call({ policy: 'never' }), () => assert.unreachable('no prompt'));
  assert.equal(r, { run: true, approval: null, by: 'policy never' });
  assert.is(svc.list(caller, { limit: 10, offset: 0 }).total, 0);
});

test('approve: the waiting call runs, the record says who, and it is an event', async () => {
  const { svc, events } = setup();
  const { rec, result } = await pending(svc, call());
  assert.is(rec.status, 'pending');
  assert.is(svc.get(caller, rec.id).status, 'pending');
  const decided = svc.approve(caller, rec.id);
  assert.is(decided.status, 'approved');
  assert.is(decided.decidedBy, 'usr_alice');
  const r = await result;
  assert.is(r.run, true);
  const ev = events.list({ type: 'tool_approval_decided', limit: 10 });
  assert.is(ev.length, 1);
  assert.is(ev[0]!.details.decision, 'approved');
  assert.is(ev[0]!.actor, 'usr_alice');
  assert.is(events.list({ type: 'tool_approval_requested', limit: 10 }).length, 1);
});

test('deny: the call does not run and the model is told who denied it and why', async () => {
  const { svc } = setup();
  const { rec, result } = await pending(svc, call());
  svc.deny(caller, rec.id, { reason: 'not on prod' });
  const r = await result;
  assert.is(r.run, false);
  if (r.run) return;
  assert.is(r.status, 'denied');
  assert.match(r.reason, /usr_alice: not on prod/);
});

test('approving one call never approves another, and a decision is made once', async () => {
  const { svc } = setup();
  const a = await pending(svc, call({ callId: 'call_a' }));
  const b = await pending(svc, call({ callId: 'call_b', input: { command: 'rm -rf /' } }));
  svc.approve(caller, a.rec.id);
  assert.is((await a.result).run, true);
  let settled = false;
  void b.result.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.not.ok(settled, 'the other call still waits');
  assert.is(svc.get(caller, b.rec.id).status, 'pending');
  assert.throws(() => svc.approve(caller, a.rec.id), /already approved/);
  assert.throws(() => svc.deny(caller, a.rec.id), /already approved/);
  svc.deny(caller, b.rec.id);
  assert.is((await b.result).run, false);
});

test('the store decides a pending approval once: a second decision (a timer racing a person) changes nothing', async () => {
  const { db, svc } = setup();
  const { rec, result } = await pending(svc, call());
  const store = new ApprovalStore(db);
  assert.is(store.decide(rec.id, 'approved', 5, 'usr_alice', null)?.status, 'approved');
  assert.is(store.decide(rec.id, 'timed_out', 6, 'system', 'late'), null);
  assert.is(store.byId(rec.id)?.status, 'approved');
  assert.is(store.byId(rec.id)?.decidedBy, 'usr_alice');
  svc.cancel({ sessionId: 'ses_1' }, 'cleanup');
  void result;
});

test('a decision naming another input hash is refused', async () => {
  const { svc } = setup();
  const { rec, result } = await pending(svc, call());
  assert.throws(() => svc.approve(caller, rec.id, { inputHash: `sha256:${'0'.repeat(64)}` }), /another input/);
  svc.approve(caller, rec.id, { inputHash: rec.inputHash });
  assert.is((await result).run, true);
});

test('another workspace cannot see or decide an approval', async () => {
  const { svc } = setup();
  const { rec, result } = await pending(svc, call());
  assert.throws(() => svc.get(other, rec.id), /not found/);
  assert.throws(() => svc.approve(other, rec.id), /not found/);
  svc.deny(caller, rec.id);
  await result;
});

test('an approval times out as timed_out and the call does not run', async () => {
  const { svc, timers } = setup();
  const { rec, result } = await pending(svc, call());
  assert.is(timers.length, 1);
  timers[0]!();
  const r = await result;
  assert.is(r.run, false);
  if (!r.run) assert.is(r.status, 'timed_out');
  assert.is(svc.get(caller, rec.id).decidedBy, 'system');
});

test('a new message supersedes what its session waits for; other sessions keep waiting', async () => {
  const { svc } = setup();
  const mine = await pending(svc, call());
  const theirs = await pending(svc, call({ sessionId: 'ses_2', callId: 'call_9' }));
  assert.is(svc.supersede('ses_1'), 1);
  const r = await mine.result;
  assert.is(r.run, false);
  if (!r.run) assert.is(r.status, 'superseded');
  assert.is(svc.get(caller, theirs.rec.id).status, 'pending');
  svc.deny(caller, theirs.rec.id);
  await theirs.result;
});

test('a cancelled turn (its signal) cancels its waiting call', async () => {
  const { svc } = setup();
  const ac = new AbortController();
  const { result } = await pending(svc, call(), ac.signal);
  ac.abort();
  const r = await result;
  if (!r.run) assert.is(r.status, 'cancelled');
  else assert.unreachable('cancelled calls do not run');
});

test('approve with auto_approve=session: the next call of that tool in the session runs without a prompt; other sessions still ask', async () => {
  const { svc } = setup();
  const first = await pending(svc, call());
  svc.approve(caller, first.rec.id, { autoApprove: 'session' });
  await first.result;
  const second = await svc.gate(call({ callId: 'call_2', input: { command: 'anything else' } }), () =>
    assert.unreachable('no prompt the second time'),
  );
  assert.is(second.run, true);
  assert.match(second.approval?.decidedBy ?? '', /^rule:aar_/);
  assert.is(second.approval?.status, 'approved');
  const elsewhere = await pending(svc, call({ sessionId: 'ses_2', callId: 'call_3' }));
  svc.deny(caller, elsewhere.rec.id);
  await elsewhere.result;
  const rules = svc.listRules(caller);
  assert.is(rules.length, 1);
  assert.is(rules[0]!.scope, 'session');
  svc.endSession('ses_1');
  assert.is(svc.listRules(caller).length, 0, 'session rules end with their session');
});

test('permanent rules are stored, match their tool and pattern, and can be deleted', async () => {
  const { svc } = setup();
  const rule = svc.createRule(caller, {
    agentId: 'agt_aaaaaaaaaaaaaaaa',
    tool: 'execute',
    scope: 'permanent',
    match: { command: 'make *' },
  });
  assert.is((await svc.gate(call(), () => assert.unreachable('covered'))).run, true);
  const uncovered = await pending(svc, call({ callId: 'call_rm', input: { command: 'rm -rf /' } }));
  svc.deny(caller, uncovered.rec.id);
  await uncovered.result;
  assert.throws(() => svc.createRule(caller, { agentId: 'agt_bbbbbbbbbbbbbbbb', tool: 'execute', scope: 'permanent' }), /no agent/);
  assert.throws(() => svc.deleteRule(other, rule.id), /not found/);
  svc.deleteRule(caller, rule.id);
  const again = await pending(svc, call({ callId: 'call_again' }));
  svc.deny(caller, again.rec.id);
  await again.result;
});

test('after a restart, approvals left pending are cancelled', async () => {
  const { db, svc } = setup();
  const { rec } = await pending(svc, call());
  const restarted = new ApprovalService({
    store: new ApprovalStore(db),
    events: storing(createEventSink(db, { nowMs: () => 2_000_000 })),
    clock: { nowMs: () => 2_000_000 },
    logger: pino({ level: 'silent' }),
    timeoutMs: 60_000,
    agentOf: () => ({ id: 'x', sessionId: 'y' }),
  });
  restarted.start();
  assert.is(restarted.get(caller, rec.id).status, 'cancelled');
});

test.run();
