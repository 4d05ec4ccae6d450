import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { validationError } from '../../core/errors.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { AuthService } from '../auth/service.ts';
import type { ApiKeyInfo } from '../auth/apikeys.ts';
import { ROLES, SCOPES, actorOf } from '../auth/types.ts';
import { principalOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, STANDARD_ERRORS } from '../schemas.ts';

const Session = Type.Object({
  token: Type.String({ description: 'JWT (HS256) for `Authorization: Bearer`' }),
  refreshToken: Type.String({ description: 'Opaque; single use: each refresh returns a new one' }),
  expiresAt: Type.String(),
  refreshExpiresAt: Type.String(),
  workspace: Type.String(),
});

const KeyView = Type.Object({
  id: Type.String(),
  prefix: Type.String(),
  name: Type.String(),
  workspace: Type.String(),
  scopes: Type.Array(Type.String()),
  createdAt: Type.String(),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  lastUsedAt: Type.Union([Type.String(), Type.Null()]),
  revoked: Type.Boolean(),
  key: Type.Optional(Type.String({ description: 'The full key: shown once, at creation or rotation, never again' })),
});

const opt = (ms: number | null) => (ms === null ? null : isoTime(ms));
const keyView = (k: ApiKeyInfo & { key?: string }) => ({
  id: k.id,
  prefix: k.prefix,
  name: k.name,
  workspace: k.workspace,
  scopes: k.scopes,
  createdAt: isoTime(k.createdMs),
  expiresAt: opt(k.expiresAtMs),
  lastUsedAt: opt(k.lastUsedMs),
  revoked: k.revoked,
  ...(k.key ? { key: k.key } : {}),
});

const sessionView = (s: Awaited<ReturnType<AuthService['login']>>) => ({
  token: s.token,
  refreshToken: s.refreshToken,
  expiresAt: isoTime(s.expiresAtMs),
  refreshExpiresAt: isoTime(s.refreshExpiresAtMs),
  workspace: s.workspace,
});

/** Login/refresh/logout, API keys, and the admin's workspaces and users. */
export const authRoutes: FastifyPluginAsync<{ auth: AuthService; events: EventSink }> = async (base, { auth, events }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/auth/login', {
    config: { public: true },
    schema: {
      tags: ['auth'],
      summary: 'Log in',
      security: [],
      body: Type.Object(
        {
          username: Type.String({ minLength: 1, maxLength: 64 }),
          password: Type.String({ minLength: 1, maxLength: 1024 }),
          workspace: Type.Optional(Type.String({ maxLength: 64 })),
        },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(Session), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      try {
        return send(reply, sessionView(await auth.login(req.body.username, req.body.password, req.body.workspace)));
      } catch (err) {
        events.emit({
          type: 'login_failed',
          severity: 'medium',
          actor: `ip:${req.ip}`,
          details: { username: req.body.username.slice(0, 64), requestId: req.id },
        });
        throw err;
      }
    },
  });

  app.post('/auth/refresh', {
    config: { public: true, optionalBody: true },
    schema: {
      tags: ['auth'],
      summary:
        'Exchange a refresh token (as `Authorization: Bearer <refreshToken>`, as in the Director Protocol, or in the body) for new tokens',
      description:
        'The body is optional: a refresh with the token in the `Authorization` header sends none. Without a token in either place the answer is 400 naming `refreshToken`. Counted in its own rate class (`DIRECTOR_RATE_LIMIT_REFRESH`), not against the login budget.',
      security: [],
      body: Type.Object({ refreshToken: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false }),
      response: { 200: Envelope(Session), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const header = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const token = req.body.refreshToken ?? header;
      if (token === undefined) {
        throw validationError(
          'refreshToken',
          'is required: send it as `Authorization: Bearer <refreshToken>` or as `refreshToken` in a JSON body',
        );
      }
      return send(reply, sessionView(await auth.refresh(token)));
    },
  });

  app.post('/auth/logout', {
    schema: {
      tags: ['auth'],
      summary: "Revoke the presented access token and its session's refresh tokens",
      response: { 200: Envelope(Type.Object({ loggedOut: Type.Boolean() })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      auth.logout(principalOf(req));
      return send(reply, { loggedOut: true });
    },
  });

  app.get('/auth/me', {
    schema: {
      tags: ['auth'],
      summary: 'Who am I: user, workspace, role and scopes',
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const p = principalOf(req);
      return send(reply, {
        userId: p.userId,
        username: p.username,
        keyId: p.keyId,
        workspace: p.workspace,
        role: p.role,
        scopes: [...p.scopes],
      });
    },
  });

  app.post('/api-keys', {
    config: { scope: 'keys:write' },
    schema: {
      tags: ['auth'],
      summary: 'Create an API key (the key is in this response only)',
      body: Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 64 }),
          scopes: Type.Array(Type.Union(SCOPES.map((s) => Type.Literal(s))), { minItems: 1, maxItems: SCOPES.length }),
          expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
        },
        { additionalProperties: false },
      ),
      response: { 201: Envelope(KeyView), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const p = principalOf(req);
      const key = auth.createApiKey(p, {
        name: req.body.name,
        scopes: req.body.scopes,
        expiresAtMs: req.body.expiresAt ? Date.parse(req.body.expiresAt) : null,
      });
      events.emit({
        type: 'api_key_created',
        severity: 'info',
        workspace: p.workspace,
        actor: actorOf(p),
        details: { keyId: key.id, scopes: key.scopes },
      });
      return send(reply, keyView(key), 201);
    },
  });

  app.get('/api-keys', {
    config: { scope: 'keys:write' },
    schema: {
      tags: ['auth'],
      summary: 'List API keys (never the secrets)',
      response: { 200: Envelope(Type.Array(KeyView)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, auth.listApiKeys(principalOf(req)).map(keyView)),
  });

  app.delete('/api-keys/:id', {
    config: { scope: 'keys:write' },
    schema: {
      tags: ['auth'],
      summary: 'Revoke an API key',
      params: IdParams('key'),
      response: { 200: Envelope(KeyView), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, keyView(auth.revokeApiKey(principalOf(req), req.params.id))),
  });

  app.post('/api-keys/:id/rotate', {
    config: { scope: 'keys:write' },
    schema: {
      tags: ['auth'],
      summary: 'Rotate: a new secret with the same name and scopes; the old key stops working',
      params: IdParams('key'),
      response: { 200: Envelope(KeyView), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, keyView(auth.rotateApiKey(principalOf(req), req.params.id))),
  });

  app.post('/workspaces', {
    config: { scope: 'admin' },
    schema: {
      tags: ['admin'],
      summary: 'Create a workspace (the caller becomes its admin)',
      body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) }, { additionalProperties: false }),
      response: { 201: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const p = principalOf(req);
      const ws = auth.createWorkspace(req.body.name);
      auth.addMembership(p.userId, ws.id, 'admin');
      return send(reply, { id: ws.id, name: ws.name, createdAt: isoTime(ws.createdMs) }, 201);
    },
  });

  app.post('/users', {
    config: { scope: 'admin' },
    schema: {
      tags: ['admin'],
      summary: "Create a user in the caller's workspace",
      body: Type.Object(
        {
          username: Type.String({ minLength: 1, maxLength: 64 }),
          password: Type.String({ minLength: 1, maxLength: 1024 }),
          role: Type.Union(ROLES.map((r) => Type.Literal(r))),
        },
        { additionalProperties: false },
      ),
      response: { 201: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const p = principalOf(req);
      const u = await auth.createUser({
        username: req.body.username,
        password: req.body.password,
        workspace: p.workspace,
        role: req.body.role,
      });
      return send(reply, { userId: u.userId, username: u.username, role: u.role, workspace: p.workspace }, 201);
    },
  });

  app.get('/users', {
    config: { scope: 'admin' },
    schema: {
      tags: ['admin'],
      summary: "Users of the caller's workspace",
      response: { 200: Envelope(Type.Array(AnyObject)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) =>
      send(
        reply,
        auth
          .listUsers(principalOf(req).workspace)
          .map((u) => ({ userId: u.userId, username: u.username, role: u.role, disabled: u.disabled })),
      ),
  });
};
