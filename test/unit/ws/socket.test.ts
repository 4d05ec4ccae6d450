import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import { SocketAuth } from '../../../api/ws/auth.ts';
import { ReadGate, SerialRunner } from '../../../api/ws/socket.ts';
import type { AuthService } from '../../../api/auth/service.ts';
import type { Principal } from '../../../api/auth/types.ts';
import { DirectorError } from '../../../core/errors.ts';
import type { EventInput, EventSink } from '../../../runtime/events.ts';

/** Just enough of a ws socket: open/closed state and pause/resume. */
function fakeSocket() {
  const s = {
    readyState: 1,
    isPaused: false,
    closedWith: null as { code: number; reason: string } | null,
    close(code: number, reason: string) {
      s.closedWith = { code, reason };
      s.readyState = 2;
    },
    pause() {
      s.isPaused = true;
    },
    resume() {
      s.isPaused = false;
    },
  };
  return { s, ws: s as unknown as WebSocket };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SerialRunner handles messages one at a time in order, pausing reads under a backlog', async () => {
  const { s, ws } = fakeSocket();
  const order: number[] = [];
  let overflowed = false;
  const runner = new SerialRunner({
    pauseAt: 4,
    maxPending: 64,
    gate: new ReadGate(ws),
    onOverflow: () => (overflowed = true),
    onError: () => undefined,
  });
  for (let i = 0; i < 10; i++) {
    runner.run(async () => {
      await sleep(i % 2 ? 1 : 5);
      order.push(i);
    });
  }
  assert.ok(s.isPaused, 'a backlog pauses reading');
  await sleep(100);
  assert.equal(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.not.ok(s.isPaused, 'reading resumes once the backlog is gone');
  assert.not.ok(overflowed);
});

test('SerialRunner overflows past maxPending and drops the rest', async () => {
  const { ws } = fakeSocket();
  let overflows = 0;
  let ran = 0;
  const runner = new SerialRunner({
    pauseAt: 2,
    maxPending: 5,
    gate: new ReadGate(ws),
    onOverflow: () => overflows++,
    onError: () => undefined,
  });
  for (let i = 0; i < 20; i++) runner.run(() => void ran++);
  await sleep(10);
  assert.is(overflows, 1);
  assert.is(ran, 5);
});

test('ReadGate resumes only when every holder released', () => {
  const { s, ws } = fakeSocket();
  const gate = new ReadGate(ws);
  gate.hold('a');
  gate.hold('b');
  gate.release('a');
  assert.ok(s.isPaused);
  gate.release('b');
  assert.not.ok(s.isPaused);
});

const principal = (userId: string, workspace: string, scopes: string[] = ['security:read']): Principal =>
  ({
    kind: 'user',
    userId,
    username: userId,
    keyId: null,
    workspace,
    role: 'auditor',
    scopes: new Set(scopes),
    tokenId: 'jti',
  }) as Principal;

/** Tokens are looked up in `valid`; deleting one "revokes" it. */
function harness() {
  const valid = new Map<string, Principal>([
    ['Bearer good', principal('usr_1', 'wsp_1')],
    ['Bearer other', principal('usr_2', 'wsp_1')],
  ]);
  const emitted: EventInput[] = [];
  const auth = {
    authenticate: async (authorization: string) => {
      const p = valid.get(authorization);
      if (!p) throw new DirectorError('AUTHENTICATION_ERROR', 'nope', { reason: 'bad_signature' });
      return p;
    },
    requireScope: (p: Principal, scope: string) => {
      if (!p.scopes.has(scope as never)) throw new DirectorError('AUTHORIZATION_ERROR', 'missing scope');
    },
  } as unknown as AuthService;
  const events = { emit: (e: EventInput) => void emitted.push(e) } as unknown as EventSink;
  const { s, ws } = fakeSocket();
  const logger = { error: () => undefined } as unknown as FastifyBaseLogger;
  const sa = new SocketAuth({ ws, auth, events, logger, route: '/v1/ws', ip: '127.0.0.1' });
  return { sa, s, valid, emitted };
}

test('SocketAuth: no credentials within the grace period closes 4001', async () => {
  const { sa, s } = harness();
  sa.armGrace(20);
  await sleep(40);
  assert.equal(s.closedWith, { code: 4001, reason: 'auth timeout' });
});

test('SocketAuth: a bad credential closes 4003 and is recorded; a good one disarms the timer', async () => {
  const bad = harness();
  bad.sa.armGrace(20);
  assert.is(await bad.sa.login({ authorization: 'Bearer forged', workspace: undefined }), null);
  assert.equal(bad.s.closedWith, { code: 4003, reason: 'authentication failed' });
  assert.is(bad.emitted[0]?.type, 'auth_failed');
  assert.is(bad.emitted[0]?.details?.reason, 'bad_signature');
  const good = harness();
  good.sa.armGrace(20);
  assert.is((await good.sa.login({ authorization: 'Bearer good', workspace: undefined }))?.userId, 'usr_1');
  await sleep(40);
  assert.is(good.s.closedWith, null);
});

test('SocketAuth: renewing as someone else closes 4003', async () => {
  const { sa, s } = harness();
  await sa.login({ authorization: 'Bearer good', workspace: undefined });
  assert.is(await sa.renew({ authorization: 'Bearer other', workspace: undefined }), null);
  assert.is(s.closedWith?.code, 4003);
  assert.is(sa.principal, null);
});

test('SocketAuth: a revoked credential closes the open socket at the next re-check, without an auth_failed event', async () => {
  const { sa, s, valid, emitted } = harness();
  await sa.login({ authorization: 'Bearer good', workspace: undefined });
  assert.ok(await sa.revalidate());
  valid.delete('Bearer good');
  assert.is(await sa.revalidate(), null);
  assert.equal(s.closedWith, { code: 4003, reason: 'authentication no longer valid' });
  assert.is(emitted.length, 0);
});

test('SocketAuth: a missing scope is refused and recorded as scope_denied', async () => {
  const { sa, emitted } = harness();
  await sa.login({ authorization: 'Bearer good', workspace: undefined });
  assert.ok(sa.permits('security:read'));
  assert.not.ok(sa.permits('sandboxes:exec', { sandboxId: 'sbx_1' }));
  assert.is(emitted[0]?.type, 'scope_denied');
  assert.is(emitted[0]?.details?.scope, 'sandboxes:exec');
});

test.run();
