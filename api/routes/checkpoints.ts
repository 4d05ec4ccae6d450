import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CreateCheckpointSchema, RestoreCheckpointSchema } from '../../orchestration/checkpoints/schemas.ts';
import type { CheckpointService } from '../../orchestration/checkpoints/service.ts';
import { toView, summaryOf } from '../../orchestration/checkpoints/view.ts';
import { callerOf, send } from '../context.ts';
import { Envelope, ErrorEnvelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const Int = Type.Integer({ minimum: 0 });

const MountSchema = Type.Object({
  path: Type.String({ description: 'The writable mount (`securityPolicy.allowedPaths`)' }),
  files: Int,
  directories: Int,
  symlinks: Int,
  bytes: Type.Integer({ minimum: 0, description: 'Content bytes of its files' }),
  storedBytes: Type.Integer({ minimum: 0, description: 'Bytes this checkpoint stored anew (unchanged content is stored once)' }),
  filesRead: Type.Integer({
    minimum: 0,
    description: "Files whose content was read out of the sandbox; the others were unchanged since the sandbox's previous checkpoint",
  }),
  skipped: Type.Integer({ minimum: 0, description: 'Entries not captured: fifos, sockets, devices, files gone or unreadable while read' }),
});

export const CheckpointSchema = Type.Object({
  id: Type.String(),
  sessionId: Type.String(),
  name: Type.String(),
  description: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown(), { description: 'The `data` document given at creation' }),
  createdAt: Type.String(),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  size: Type.Object({ files: Int, bytes: Int, storedBytes: Int }),
  state: Type.Object({ departments: Int }),
  context: Type.Object({ windows: Int, items: Int }),
  messages: Int,
  sandboxes: Type.Array(
    Type.Object({
      sandboxId: Type.String(),
      name: Type.String(),
      image: Type.String(),
      status: Type.String({
        description: 'The sandbox status when captured; only running sandboxes have files (a stopped one lost its tmpfs mounts)',
      }),
      mounts: Type.Array(MountSchema),
    }),
  ),
});

const RestoreResultSchema = Type.Object({
  checkpointId: Type.String(),
  sessionId: Type.String(),
  restored: Type.Object({ state: Type.Boolean(), context: Type.Boolean(), messages: Type.Boolean(), files: Type.Boolean() }),
  sandboxes: Type.Array(
    Type.Object({
      checkpointSandboxId: Type.String({ description: 'The sandbox the checkpoint captured' }),
      sandboxId: Type.String({ description: 'The sandbox the files are in now' }),
      recreated: Type.Boolean({ description: 'True when the captured sandbox no longer ran and was made again from its recorded spec' }),
      environmentNotRestored: Type.Array(Type.String(), {
        description: 'Environment variables a recreated sandbox had and did not get back (Director never stores their values)',
      }),
      mounts: Type.Array(
        Type.Object({
          path: Type.String(),
          added: Type.Integer({ minimum: 0, description: 'Names put in place (files, symlinks, whole directories)' }),
          removed: Type.Integer({ minimum: 0, description: 'Names removed (added since, or replaced)' }),
          kept: Type.Integer({ minimum: 0, description: 'Files left as they were (unchanged since the checkpoint)' }),
        }),
      ),
    }),
  ),
});

const ListQuery = Type.Object(
  {
    sessionId: Type.Optional(Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$', description: "Only this session's checkpoints" })),
    ...PageQuery,
  },
  { additionalProperties: false },
);

/**
 * The Director Protocol's checkpoints (`/v1/checkpoints`): create, list, read, delete, restore.
 * Reads need `sessions:read`, the rest `sessions:write`.
 */
export const checkpointRoutes: FastifyPluginAsync<{ checkpoints: CheckpointService }> = async (base, { checkpoints }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/checkpoints', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: ['checkpoints'],
      summary: 'Create a checkpoint of a session',
      description:
        "Captures under one `ckp_` id: the `data` document, the session's state (its record and departments), its context windows, its messages, and the files of its running sandboxes' writable mounts (`securityPolicy.allowedPaths`, such as `/workspace`; `/tmp` is scratch and left out). Files are read inside the sandbox as its user and checked like every download (names, links as records never followed, devices and fifos skipped, caps); they are stored by content, so files unchanged since the sandbox's previous checkpoint are not read again and cost nothing twice. Refused with 409 when the session keeps DIRECTOR_CHECKPOINT_MAX_PER_SESSION checkpoints, 413 when its files exceed DIRECTOR_CHECKPOINT_MAX_BYTES; a refused or failed checkpoint stores nothing. Honours `Idempotency-Key`.",
      body: CreateCheckpointSchema,
      response: { 201: Envelope(CheckpointSchema), 409: ErrorEnvelope, 413: ErrorEnvelope, 422: ErrorEnvelope, ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, toView(summaryOf(await checkpoints.create(callerOf(req), req.body))), 201),
  });

  app.get('/checkpoints', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['checkpoints'],
      summary: "List checkpoints (newest first), optionally one session's",
      description:
        "Every checkpoint of the workspace, or of one session: those made by `POST /v1/checkpoints` and those made by workflow `checkpoint` steps (their `data` carries `workflowId`, `runId`, `step`, `round` and the run's `context`; their `sandboxes` holds the run's sandbox only).",
      querystring: ListQuery,
      response: { 200: Envelope(Page(CheckpointSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { sessionId, limit = 20, offset = 0 } = req.query;
      const page = checkpoints.list(callerOf(req), { ...(sessionId ? { sessionId } : {}), limit, offset });
      return send(reply, { items: page.items.map(toView), total: page.total, limit, offset });
    },
  });

  app.get('/checkpoints/:id', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['checkpoints'],
      summary: 'Get a checkpoint: what it holds',
      params: IdParams('ckp'),
      response: { 200: Envelope(CheckpointSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, toView(checkpoints.get(callerOf(req), req.params.id))),
  });

  app.delete('/checkpoints/:id', {
    config: { scope: 'sessions:write' },
    schema: {
      tags: ['checkpoints'],
      summary: 'Delete a checkpoint (stored files no other checkpoint uses are removed)',
      params: IdParams('ckp'),
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      checkpoints.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });

  app.post('/checkpoints/:id/restore', {
    config: { scope: 'sessions:write', optionalBody: true },
    schema: {
      tags: ['checkpoints'],
      summary: 'Restore a checkpoint into its session',
      description:
        "Puts back what the body asks for; every part defaults to true (an empty body restores everything the checkpoint holds). Files: each captured sandbox's mounts become exactly what was captured (added files removed, changed ones back, deleted ones returned); files unchanged since the checkpoint are left in place. A checkpoint holds files only of the sandboxes it captured (a workflow step's: the run's sandbox), so only those are touched. A sandbox that still runs is restored in place; one that stopped or was deleted is recreated from its recorded spec (same image, limits and policy; environment values are never stored, so it gets none: see `environmentNotRestored`) and filled. The files are staged inside each mount and swapped in by renames: a restore that fails at any step leaves every sandbox as it was (422, or 413 when the staged files do not fit in the mount's free space). Needs an active session (409 otherwise).",
      params: IdParams('ckp'),
      body: Type.Union([RestoreCheckpointSchema, Type.Null()]),
      response: { 200: Envelope(RestoreResultSchema), 409: ErrorEnvelope, 413: ErrorEnvelope, 422: ErrorEnvelope, ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, await checkpoints.restore(callerOf(req), req.params.id, req.body ?? {})),
  });
};
