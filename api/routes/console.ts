import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { sendFail } from '../context.ts';

/** Where scripts/build-console.ts puts the built console (never committed). */
export const CONSOLE_DIST = fileURLToPath(new URL('../../console/dist/', import.meta.url));

export interface ConsoleRouteOptions {
  /** The built console (index.html, assets/); default {@link CONSOLE_DIST}. */
  dir?: string;
}

const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ASSET_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * The console's Content-Security-Policy. Scripts and connections only from this origin (the
 * WebSocket hub and terminals included: CSP 3 `'self'` covers ws: and wss: to the same host),
 * no inline script, no eval, nothing from a CDN, no framing, no form posts elsewhere. Styles
 * come from this origin, or from `<style>` elements carrying this response's nonce: xterm.js
 * writes its measured cell sizes and theme into `<style>` elements, and the console stamps them
 * with the nonce (console/src/csp.ts) rather than allowing inline styles from anywhere.
 */
export const consoleCsp = (nonce: string): string =>
  [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "manifest-src 'self'",
  ].join('; ');

/** Scripts and stylesheets are not documents: nothing in them may load anything by itself. */
const ASSET_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Headers on every console response, whatever its body. */
function hardened(reply: FastifyReply, csp: string): FastifyReply {
  return reply
    .header('content-security-policy', csp)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin')
    .header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()');
}

const NOT_BUILT = 'the web console is not built: run scripts/provision.sh (or node scripts/build-console.ts)';

/**
 * The web console, a static single-page app built at provisioning time: `GET /console` (the page,
 * with a fresh CSP nonce per response) and `GET /console/assets/<file>` (content-hashed, cached
 * for good). Both are public like any static file; everything the console shows comes from the
 * /v1 API with the user's own bearer token.
 */
export const consoleRoutes: FastifyPluginAsync<ConsoleRouteOptions> = async (app, opts) => {
  const dir = opts.dir ?? CONSOLE_DIST;
  const route = { config: { public: true }, schema: { hide: true } };

  app.get('/console', route, async (_req, reply) => {
    const nonce = randomBytes(16).toString('base64');
    hardened(reply, consoleCsp(nonce));
    let template: string;
    try {
      template = await readFile(path.join(dir, 'index.html'), 'utf8');
    } catch {
      return sendFail(reply, 'SERVICE_UNAVAILABLE', NOT_BUILT, { reason: 'console_not_built' });
    }
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(template.replaceAll('%NONCE%', nonce));
  });

  app.get<{ Params: { file: string } }>('/console/assets/:file', route, async (req, reply) => {
    hardened(reply, ASSET_CSP);
    const { file } = req.params;
    const type = ASSET_TYPES[path.extname(file)];
    const full = path.join(dir, 'assets', file);
    const found = ASSET_NAME.test(file) && type !== undefined ? await stat(full).catch(() => null) : null;
    if (!found?.isFile()) return sendFail(reply, 'NOT_FOUND', `no console asset ${file.slice(0, 128)}`, { path: req.url.slice(0, 256) });
    return reply
      .type(type!)
      .header('content-length', found.size)
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(createReadStream(full));
  });
};
