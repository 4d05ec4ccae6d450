/** The webhook service without HTTP: what the route calls (create checks, tenancy, limits, events). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { systemClock } from '../../../core/clock.ts';
import { openDb } from '../../../core/db.ts';
import { isDirectorError } from '../../../core/errors.ts';
import { createEventSink } from '../../../runtime/events.ts';
import type { LookupAll } from '../../../runtime/webhooks/guard.ts';
import { resolveOptions, type DispatcherOptions } from '../../../runtime/webhooks/options.ts';
import { Webhooks } from '../../../runtime/webhooks/service.ts';
import type { Transport } from '../../../runtime/webhooks/transport.ts';
import { storing } from '../../helpers/sink.ts';

const SECRET = 'unit-test-secret-0123';
const me = { workspace: 'w1', actor: 'usr_1' };

function setup(options: Partial<DispatcherOptions> = {}, settings = {}) {
  const db = openDb('/tmp/x', ':memory:');
  const events = storing(createEventSink(db, systemClock));
  const names: Record<string, string> = { 'inside.example': '10.1.2.3', 'outside.example': '203.0.113.7' };
  const lookup: LookupAll = (host) =>
    names[host] ? Promise.resolve([{ address: names[host], family: 4 }]) : Promise.reject(new Error('ENOTFOUND'));
  const transport: Transport = () => Promise.resolve({ statusCode: 200 });
  const webhooks = new Webhooks({
    db,
    events,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    options: resolveOptions({ lookup, transport, ...options }, settings),
  });
  return { db, events, webhooks };
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; field: unknown }> {
  try {
    await p;
  } catch (err) {
    if (isDirectorError(err)) return { code: err.code, field: err.details?.field };
    throw err;
  }
  throw new Error('expected a refusal');
}

test('create refuses private targets, literal or resolved, and unknown event names, naming the field', async () => {
  const { webhooks } = setup();
  assert.equal(await refusal(webhooks.create(me, { url: 'http://127.0.0.1:9/h', events: ['sandbox.created'], secret: SECRET })), {
    code: 'VALIDATION_ERROR',
    field: 'url',
  });
  assert.equal(await refusal(webhooks.create(me, { url: 'https://inside.example/h', events: ['sandbox.created'], secret: SECRET })), {
    code: 'VALIDATION_ERROR',
    field: 'url',
  });
  assert.equal(await refusal(webhooks.create(me, { url: 'https://outside.example/h', events: ['no.such'], secret: SECRET })), {
    code: 'VALIDATION_ERROR',
    field: 'events[0]',
  });
  assert.is(webhooks.list(me, { limit: 10, offset: 0 }).total, 0);
});

test("the operator's settings open ranges: DIRECTOR_WEBHOOK_ALLOWED_CIDRS and DIRECTOR_WEBHOOK_ALLOW_PRIVATE", async () => {
  const cidrs = setup({}, { webhookAllowedCidrs: '10.0.0.0/8' });
  const rec = await cidrs.webhooks.create(me, { url: 'https://inside.example/h', events: ['sandbox.created'], secret: SECRET });
  assert.is(rec.url, 'https://inside.example/h');
  const priv = setup({}, { webhookAllowPrivate: true });
  await priv.webhooks.create(me, { url: 'http://127.0.0.1:9/h', events: ['sandbox.created'], secret: SECRET });
  // Metadata stays closed whatever the operator opened.
  assert.is(
    (await refusal(priv.webhooks.create(me, { url: 'http://169.254.169.254/', events: ['sandbox.created'], secret: SECRET }))).field,
    'url',
  );
});

test('a workspace sees only its own webhooks; create and delete are recorded; the per-workspace limit holds', async () => {
  const { webhooks, events } = setup({ maxWebhooksPerWorkspace: 1 });
  const rec = await webhooks.create(me, { url: 'https://outside.example/h', events: ['sandbox.created'], secret: SECRET });
  assert.is(
    (await refusal(webhooks.create(me, { url: 'https://outside.example/2', events: ['sandbox.created'], secret: SECRET }))).code,
    'UNPROCESSABLE',
  );
  assert.is(webhooks.get(me, rec.id).id, rec.id);
  assert.throws(
    () => webhooks.get({ workspace: 'w2' }, rec.id),
    (e: unknown) => isDirectorError(e) && e.code === 'NOT_FOUND',
  );
  assert.throws(
    () => webhooks.delete({ workspace: 'w2' }, rec.id),
    (e: unknown) => isDirectorError(e) && e.code === 'NOT_FOUND',
  );
  assert.is(webhooks.pendingCount(rec.id), 0);
  assert.equal(webhooks.deliveries(rec, { limit: 5 }), []);
  webhooks.delete(me, rec.id);
  const types = events.list({ workspace: 'w1', limit: 10 }).map((e) => [e.type, e.actor, e.details.webhookId]);
  assert.equal(types, [
    ['webhook_created', 'usr_1', rec.id],
    ['webhook_deleted', 'usr_1', rec.id],
  ]);
  assert.throws(
    () => webhooks.get(me, rec.id),
    (e: unknown) => isDirectorError(e) && e.code === 'NOT_FOUND',
  );
});

test('a name that does not resolve yet is accepted (every delivery resolves again)', async () => {
  const { webhooks } = setup();
  const rec = await webhooks.create(me, { url: 'https://later.example/h', events: ['sandbox.created'], secret: SECRET });
  assert.is(rec.url, 'https://later.example/h');
});

test.run();
