import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import type { AutoApproveRule } from '../../orchestration/approvals/policy.ts';
import { CreateRuleSchema, type ApprovalService } from '../../orchestration/approvals/service.ts';
import { APPROVAL_STATES, type ApprovalRecord } from '../../orchestration/approvals/store.ts';
import { callerOf, send } from '../context.ts';
import { Envelope, ErrorEnvelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const ApprovalSchema = Type.Object({
  id: Type.String(),
  sessionId: Type.String(),
  agentId: Type.String(),
  turnId: Type.String(),
  callId: Type.String({ description: 'The tool call this approval is bound to' }),
  tool: Type.String(),
  input: Type.Unknown({ description: 'The call’s input (secrets redacted)' }),
  inputHash: Type.String({ description: 'sha256 of the canonical JSON of the input: the approval opens only this input' }),
  status: Type.Union(APPROVAL_STATES.map((s) => Type.Literal(s))),
  reason: Type.Union([Type.String(), Type.Null()]),
  decidedBy: Type.Union([Type.String(), Type.Null()], {
    description: 'An actor, `rule:aar_…`, or `system` (timeout, superseded, cancelled)',
  }),
  ruleId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  expiresAt: Type.String(),
  decidedAt: Type.Union([Type.String(), Type.Null()]),
});

const RuleSchema = Type.Object({
  id: Type.String(),
  agentId: Type.String(),
  tool: Type.String(),
  match: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
  scope: Type.Union([Type.Literal('session'), Type.Literal('permanent')]),
  sessionId: Type.Union([Type.String(), Type.Null()]),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
});

const view = (a: ApprovalRecord) => ({
  id: a.id,
  sessionId: a.sessionId,
  agentId: a.agentId,
  turnId: a.turnId,
  callId: a.callId,
  tool: a.tool,
  input: a.input,
  inputHash: a.inputHash,
  status: a.status,
  reason: a.reason,
  decidedBy: a.decidedBy,
  ruleId: a.ruleId,
  createdAt: isoTime(a.createdMs),
  expiresAt: isoTime(a.expiresMs),
  decidedAt: a.decidedMs === null ? null : isoTime(a.decidedMs),
});

const ruleView = (r: AutoApproveRule) => ({
  id: r.id,
  agentId: r.agentId,
  tool: r.tool,
  match: r.match,
  scope: r.scope,
  sessionId: r.sessionId,
  createdBy: r.createdBy,
  createdAt: isoTime(r.createdMs),
});

const DecisionHash = Type.Optional(
  Type.String({
    pattern: '^sha256:[0-9a-f]{64}$',
    description: 'When given, the decision applies only if the call’s input has this hash (409 otherwise)',
  }),
);

/** Approvals and auto-approve rules (the Denkeeper seed's endpoints, under `/v1`). */
export const approvalRoutes: FastifyPluginAsync<{ approvals: ApprovalService }> = async (base, { approvals }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('apr');

  app.get('/approvals', {
    config: { scope: 'agents:read' },
    schema: {
      tags: ['approvals'],
      summary: 'List approval requests',
      description: 'Newest first; filter by `status` (`pending` for what waits), `sessionId` or `agentId`.',
      querystring: Type.Object(
        {
          status: Type.Optional(Type.Union(APPROVAL_STATES.map((s) => Type.Literal(s)))),
          sessionId: Type.Optional(Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$' })),
          agentId: Type.Optional(Type.String({ pattern: '^agt_[A-Za-z0-9_-]{16}$' })),
          ...PageQuery,
        },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(Page(ApprovalSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { status, sessionId, agentId, limit = 20, offset = 0 } = req.query;
      const page = approvals.list(callerOf(req), {
        ...(status ? { status } : {}),
        ...(sessionId ? { sessionId } : {}),
        ...(agentId ? { agentId } : {}),
        limit,
        offset,
      });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.get('/approvals/:id', {
    config: { scope: 'agents:read' },
    schema: {
      tags: ['approvals'],
      summary: 'Get an approval request',
      params: Params,
      response: { 200: Envelope(ApprovalSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(approvals.get(callerOf(req), req.params.id))),
  });

  app.post('/approvals/:id/approve', {
    // The body of a decision is optional: the Denkeeper seed approves and denies with none.
    config: { scope: 'approvals:write', optionalBody: true },
    schema: {
      tags: ['approvals'],
      summary: 'Approve a pending tool call',
      description:
        'The call (and only it: the approval is bound to its tool, call id and input hash) runs. `?auto_approve=session|permanent` also creates an auto-approve rule for this agent’s later calls of the same tool. A decided approval answers 409.',
      params: Params,
      querystring: Type.Object(
        { auto_approve: Type.Optional(Type.Union([Type.Literal('session'), Type.Literal('permanent')])) },
        { additionalProperties: false },
      ),
      body: Type.Optional(Type.Object({ inputHash: DecisionHash }, { additionalProperties: false })),
      response: { 200: Envelope(ApprovalSchema), ...STANDARD_ERRORS, 409: ErrorEnvelope },
    },
    handler: async (req, reply) => {
      const auto = req.query.auto_approve;
      const hash = req.body?.inputHash;
      return send(
        reply,
        view(
          approvals.approve(callerOf(req), req.params.id, { ...(auto ? { autoApprove: auto } : {}), ...(hash ? { inputHash: hash } : {}) }),
        ),
      );
    },
  });

  app.post('/approvals/:id/deny', {
    config: { scope: 'approvals:write', optionalBody: true },
    schema: {
      tags: ['approvals'],
      summary: 'Deny a pending tool call',
      description: 'The call does not run; the model is told it was denied (with `reason`, if given) and not to retry it unasked.',
      params: Params,
      body: Type.Optional(
        Type.Object({ reason: Type.Optional(Type.String({ maxLength: 1000 })), inputHash: DecisionHash }, { additionalProperties: false }),
      ),
      response: { 200: Envelope(ApprovalSchema), ...STANDARD_ERRORS, 409: ErrorEnvelope },
    },
    handler: async (req, reply) => {
      const { reason, inputHash } = req.body ?? {};
      return send(
        reply,
        view(approvals.deny(callerOf(req), req.params.id, { ...(reason ? { reason } : {}), ...(inputHash ? { inputHash } : {}) })),
      );
    },
  });

  app.get('/auto-approve', {
    config: { scope: 'agents:read' },
    schema: {
      tags: ['approvals'],
      summary: 'List auto-approve rules',
      querystring: Type.Object(
        { agent: Type.Optional(Type.String({ pattern: '^agt_[A-Za-z0-9_-]{16}$' })) },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(Type.Object({ items: Type.Array(RuleSchema) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, { items: approvals.listRules(callerOf(req), req.query.agent).map(ruleView) }),
  });

  app.post('/auto-approve', {
    config: { scope: 'approvals:write' },
    schema: {
      tags: ['approvals'],
      summary: 'Create an auto-approve rule',
      description:
        'Calls of `tool` (or `*`) by the agent whose arguments match `match` (globs) run without a prompt; each is still recorded as an approval decided by the rule. `session`: kept in memory for the agent’s session (gone at a restart or when the session ends); `permanent`: stored.',
      body: CreateRuleSchema,
      response: { 201: Envelope(RuleSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, ruleView(approvals.createRule(callerOf(req), req.body)), 201),
  });

  app.delete('/auto-approve/:id', {
    config: { scope: 'approvals:write' },
    schema: {
      tags: ['approvals'],
      summary: 'Delete an auto-approve rule',
      params: IdParams('aar'),
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      approvals.deleteRule(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
