import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import { Type } from 'typebox';
import type { FileTransfer } from '../../runtime/sandbox/transfer.ts';
import { callerOf, send } from '../context.ts';
import { Envelope, IdParams, STANDARD_ERRORS } from '../schemas.ts';

const FileQuery = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 1024, description: 'Absolute path inside the sandbox' }),
    format: Type.Optional(
      Type.Union([Type.Literal('file'), Type.Literal('tar')], {
        description:
          '`file` (default): one regular file; `tar`: an archive (upload: extracted into `path`, a directory; download: `path` and everything under it)',
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * `PUT|GET /v1/sandboxes/{id}/files?path=`. Bodies are raw bytes (`application/octet-stream`) or
 * a tar archive (`application/x-tar`), capped at DIRECTOR_FILE_MAX_BYTES (413 beyond). What comes
 * back from a sandbox is treated as hostile: links, devices and escaping names are refused (422).
 */
export const fileRoutes: FastifyPluginAsync<{ files: FileTransfer; maxBytes: number }> = async (base, { files, maxBytes }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const limit = maxBytes;
  for (const type of ['application/octet-stream', 'application/x-tar']) {
    app.addContentTypeParser(type, { bodyLimit: limit }, (_req, payload, done) => done(null, payload));
  }

  app.put('/sandboxes/:id/files', {
    config: { scope: 'sandboxes:write' },
    bodyLimit: limit,
    schema: {
      tags: ['sandboxes'],
      summary: 'Upload a file or a tar archive',
      params: IdParams('sbx'),
      querystring: FileQuery,
      response: {
        200: Envelope(Type.Object({ path: Type.String(), bytes: Type.Integer() })),
        413: STANDARD_ERRORS[400],
        ...STANDARD_ERRORS,
      },
    },
    handler: async (req, reply) => {
      const format = req.query.format ?? (req.headers['content-type']?.startsWith('application/x-tar') ? 'tar' : 'file');
      return send(reply, await files.upload(callerOf(req), req.params.id, req.query.path, req.body as Readable, format));
    },
  });

  app.get('/sandboxes/:id/files', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['sandboxes'],
      summary: 'Download a file or a tar archive',
      params: IdParams('sbx'),
      querystring: FileQuery,
      response: {
        200: Type.Any({ description: 'The file (application/octet-stream) or a tar archive (application/x-tar)' }),
        ...STANDARD_ERRORS,
      },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      if ((req.query.format ?? 'file') === 'tar') {
        const tar = await files.downloadTar(caller, req.params.id, req.query.path);
        return reply.type('application/x-tar').header('content-disposition', 'attachment; filename="download.tar"').send(tar);
      }
      const file = await files.downloadFile(caller, req.params.id, req.query.path);
      return reply
        .type('application/octet-stream')
        .header('content-disposition', `attachment; filename="${file.name.replace(/[^A-Za-z0-9._-]/g, '_')}"`)
        .header('x-file-mode', (file.mode & 0o777).toString(8))
        .send(file.content);
    },
  });
};
