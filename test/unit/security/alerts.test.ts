import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEventSink, type EventInput } from '../../../runtime/events.ts';
import { AlertEngine, loadAlertConfig, type AlertRule } from '../../../runtime/security/alerts.ts';
import { openDb } from '../../../core/db.ts';

const test = suite('security alerts');

function setup(rules = loadAlertConfig().rules, seenBefore?: (t: string[]) => boolean) {
  const clock = {
    now: 1_700_000_000_000,
    nowMs(): number {
      return this.now;
    },
  };
  const db = openDb('/tmp/x', ':memory:');
  const events = createEventSink(db, clock);
  const engine = new AlertEngine({ events, clock, rules, ...(seenBefore ? { seenBefore } : {}) });
  engine.attach();
  const emit = (e: Partial<EventInput> & { type: string }, n = 1) => {
    for (let i = 0; i < n; i++) events.emit({ severity: 'medium', ...e });
    events.flush();
  };
  const of = (type: string) => events.list({ type, limit: 1000 });
  return { clock, events, engine, emit, of };
}

const rule = (over: Partial<AlertRule> = {}): AlertRule => ({
  enabled: true,
  severity: 'high',
  message: 'm',
  threshold: 3,
  windowMs: 10_000,
  types: ['x'],
  groupBy: 'global',
  ...over,
});

test('the shipped rules file validates and has the five rules', () => {
  const r = loadAlertConfig().rules;
  assert.equal(Object.keys(r).sort(), [
    'AUTH_FAILURE_BURST',
    'EGRESS_DENIAL_BURST',
    'HIGH_ERROR_RATE',
    'POLICY_TAMPERED',
    'REPEATED_POLICY_VIOLATIONS',
  ]);
});

test("EGRESS_DENIAL_BURST fires once at the threshold from one sandbox, in the Director Protocol's alert shape", () => {
  const { emit, of, engine } = setup();
  emit({ type: 'egress_denied', workspace: 'w', sandboxId: 'sbx_a' }, 19);
  emit({ type: 'egress_denied', workspace: 'w', sandboxId: 'sbx_b' }, 5);
  assert.is(of('security_alert').length, 0);
  emit({ type: 'egress_denied', workspace: 'w', sandboxId: 'sbx_a' });
  const [a] = of('security_alert');
  assert.ok(a);
  assert.is(a.severity, 'high');
  assert.is(a.sandboxId, 'sbx_a');
  assert.is(a.workspace, 'w');
  const alert = a.details.alert as { rule: string; severity: string; message: string; timestamp: string };
  assert.is(alert.rule, 'EGRESS_DENIAL_BURST');
  assert.is(alert.severity, 'high');
  assert.type(alert.message, 'string');
  assert.is(alert.timestamp, new Date(1_700_000_000_000).toISOString());
  assert.is(a.details.count, 20);
  assert.is(a.details.window, '30s');
  assert.is(a.details.key, 'sbx_a');
  // Still active: more events do not re-fire.
  emit({ type: 'egress_denied', workspace: 'w', sandboxId: 'sbx_a' }, 10);
  assert.is(of('security_alert').length, 1);
  assert.is(engine.active()[0]?.count, 30);
});

test('an alert clears when the window no longer holds enough events, and can fire again', () => {
  const { emit, of, engine, clock } = setup({ R: rule() });
  emit({ type: 'x' }, 3);
  assert.is(engine.active().length, 1);
  clock.now += 5_000;
  engine.tick();
  assert.is(engine.active().length, 1, 'still within the window');
  clock.now += 5_001;
  engine.tick();
  assert.is(engine.active().length, 0);
  const [c] = of('security_alert_cleared');
  assert.is((c?.details.alert as { rule: string }).rule, 'R');
  assert.is(c?.severity, 'info');
  emit({ type: 'x' }, 3);
  assert.is(of('security_alert').length, 2);
});

test('events spread wider than the window never fire', () => {
  const { emit, of, clock } = setup({ R: rule() });
  for (let i = 0; i < 10; i++) {
    emit({ type: 'x' });
    clock.now += 5_000;
  }
  assert.is(of('security_alert').length, 0);
});

test('REPEATED_POLICY_VIOLATIONS keys by actor within a workspace', () => {
  const { emit, of } = setup();
  emit({ type: 'policy_violation', workspace: 'w1', actor: 'usr_a' }, 4);
  emit({ type: 'policy_violation', workspace: 'w2', actor: 'usr_a' }, 4);
  assert.is(of('security_alert').length, 0);
  emit({ type: 'policy_violation', workspace: 'w1', actor: 'usr_a' });
  const [a] = of('security_alert');
  assert.is(a?.details.key, 'w1|usr_a');
  assert.is(a?.workspace, 'w1');
});

test('POLICY_TAMPERED fires on the first tamper as critical, host-level', () => {
  const { emit, of } = setup();
  emit({ type: 'policy_tampered', severity: 'critical' });
  const [a] = of('security_alert');
  assert.is(a?.severity, 'critical');
  assert.is(a?.workspace, null);
});

test('AUTH_FAILURE_BURST counts auth_failed and login_failed per source', () => {
  const { emit, of } = setup();
  emit({ type: 'auth_failed', actor: 'ip:10.0.0.1' }, 5);
  emit({ type: 'login_failed', actor: 'ip:10.0.0.2' }, 9);
  assert.is(of('security_alert').length, 0);
  emit({ type: 'login_failed', actor: 'ip:10.0.0.1' }, 5);
  const [a] = of('security_alert');
  assert.is(a?.details.key, 'ip:10.0.0.1');
});

test('HIGH_ERROR_RATE counts the fallback types until an http_error is seen, then only http_error', () => {
  const rules = { HIGH_ERROR_RATE: { ...loadAlertConfig().rules.HIGH_ERROR_RATE!, threshold: 3 } };
  const { emit, of, engine } = setup(rules);
  emit({ type: 'auth_failed' });
  emit({ type: 'exec_denied', workspace: 'w' });
  emit({ type: 'policy_violation', workspace: 'w' });
  assert.is(of('security_alert').length, 1);
  assert.is((of('security_alert')[0]?.details.alert as { rule: string }).rule, 'HIGH_ERROR_RATE');
  const fresh = setup(rules);
  fresh.emit({ type: 'http_error' });
  fresh.emit({ type: 'auth_failed' }, 5);
  assert.is(fresh.of('security_alert').length, 0, 'fallback types no longer count');
  fresh.emit({ type: 'http_error' }, 2);
  assert.is(fresh.of('security_alert').length, 1);
  assert.ok(engine.active().length === 1);
});

test('HIGH_ERROR_RATE uses http_error from the start when the store already has one', () => {
  const rules = { HIGH_ERROR_RATE: { ...loadAlertConfig().rules.HIGH_ERROR_RATE!, threshold: 2 } };
  const { emit, of } = setup(rules, (t) => t.includes('http_error'));
  emit({ type: 'auth_failed' }, 5);
  assert.is(of('security_alert').length, 0);
});

test('a disabled rule never fires', () => {
  const { emit, of } = setup({ R: rule({ enabled: false, threshold: 1 }) });
  emit({ type: 'x' }, 5);
  assert.is(of('security_alert').length, 0);
});

test.run();
