import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../core/db.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Shells } from '../../runtime/sandbox/shell.ts';
import type { AuthService } from '../auth/service.ts';
import { routeConfigOf, sendFail } from '../context.ts';
import { IdParams } from '../schemas.ts';
import { upgradeCredential } from './auth.ts';
import { builtinChannels, type ChannelDefinition } from './channels.ts';
import { Hub } from './hub.ts';
import { resolveWsOptions, type WsOptions, type WsSettings } from './options.ts';
import { originAllowed } from './origin.ts';
import { CLOSE, CLOSE_REASON } from './protocol.ts';
import { startHeartbeat } from './socket.ts';
import { TerminalQuery, Terminals } from './terminal.ts';

export interface WsPluginOptions extends WsOptions {
  auth: AuthService;
  /** The event stream the hub's channels carry, and where socket refusals are recorded. */
  events: EventSink;
  /** The event store, for the channels' newest cursor. */
  db: Db;
  /** Interactive shells, for the terminal. */
  shells: Shells;
  /** The operator's WebSocket settings (auth grace, allowed origins). */
  settings: WsSettings;
  /**
   * Channels beyond the built-in `security` and `sandboxes`: the extension point for later
   * layers (`sessions` → `session_update`, `workflows` → `workflow_progress`).
   */
  channels?: Record<string, ChannelDefinition>;
}

/** How long sockets get to finish their closing handshake at shutdown before they are cut, in ms. */
const SHUTDOWN_GRACE_MS = 1000;

/**
 * The WebSocket endpoints: `/v1/ws` (the event hub) and `/v1/sandboxes/:id/terminal`. Both
 * routes are public to the app's HTTP auth hook because a browser cannot set headers on a
 * WebSocket: they authenticate themselves (bearer at upgrade, or a first `auth` message).
 * The wire protocol is in ./protocol.ts.
 */
export const wsPlugin: FastifyPluginAsync<WsPluginOptions> = async (instance, opts) => {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();
  const { auth, events } = opts;
  const options = resolveWsOptions(opts, opts.settings);
  const hub = new Hub({ auth, events, logger: app.log, options });
  for (const [name, def] of Object.entries({ ...builtinChannels(events, opts.db), ...opts.channels })) hub.registerChannel(name, def);
  const terminals = new Terminals({ shells: opts.shells, events, auth, logger: app.log, options });
  let stopHeartbeat = () => {};

  await app.register(websocket, {
    options: { maxPayload: options.maxPayloadBytes },
    errorHandler: (err, socket, req) => {
      req.log.warn({ err }, 'websocket error');
      socket.terminate();
    },
    preClose: async () => {
      stopHeartbeat();
      hub.close();
      terminals.close();
      const wss = app.websocketServer;
      for (const ws of wss.clients) ws.close(CLOSE.GOING_AWAY, CLOSE_REASON.shuttingDown);
      // A client that does not read never answers the close frame: cut it after a grace.
      const cut = setTimeout(() => {
        for (const ws of wss.clients) ws.terminate();
      }, SHUTDOWN_GRACE_MS);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      clearTimeout(cut);
    },
  });
  // Every heartbeat also re-checks credentials, so revocations reach open sockets within one interval.
  stopHeartbeat = startHeartbeat(app.websocketServer, options.heartbeatMs, () => {
    Promise.all([hub.revalidate(), terminals.revalidate()]).catch((err: unknown) =>
      app.log.error({ err }, 'websocket credential re-check failed'),
    );
  });

  /** Refuses the upgrade (403) for a browser on a site not allowed, and records it. */
  const checkOrigin = async (req: FastifyRequest, reply: FastifyReply) => {
    const origin = req.headers.origin;
    if (originAllowed(origin, req.headers.host, options.allowedOrigins)) return;
    events.emit({
      type: 'ws_origin_refused',
      severity: 'medium',
      actor: `ip:${req.ip}`,
      details: { origin: String(origin).slice(0, 256), route: routeConfigOf(req).url ?? null, requestId: req.id },
    });
    return sendFail(reply, 'AUTHORIZATION_ERROR', 'this origin may not open WebSockets here', { reason: 'origin_not_allowed' });
  };

  app.get('/v1/ws', { websocket: true, config: { public: true }, preValidation: checkOrigin }, (socket, req) => {
    hub.accept(socket, req.ip, upgradeCredential(req));
  });

  app.get(
    '/v1/sandboxes/:id/terminal',
    {
      websocket: true,
      config: { public: true },
      preValidation: checkOrigin,
      schema: { params: IdParams('sbx'), querystring: TerminalQuery },
    },
    (socket, req) => {
      terminals.accept(socket, { sandboxId: req.params.id, ip: req.ip, query: req.query, credential: upgradeCredential(req) });
    },
  );
};
