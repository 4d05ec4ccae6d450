/**
 * Security profiles: named ceilings on what a sandbox may be given (the Director Protocol's
 * `POST /security/profiles` body). Pure data and pure functions: the store, the API and the
 * create flow all use the same checks, and nothing here touches the engine.
 *
 * Semantics of each constraint (a profile is a **ceiling**, a request can only narrow it):
 * - `allowFilesystem` / `allowNetwork` / `allowExec` false: a request asking for it is refused;
 *   a request silent about it gets it off.
 * - `readOnlyRoot` true: a request asking for a writable root is refused. false: no constraint.
 * - `maxProcesses`: ceiling of `resourceLimits.pids`, and its value when the request sets none.
 * - `maxOpenFiles`: RLIMIT_NOFILE of the sandbox's processes (never above the operator's
 *   `DIRECTOR_NOFILE`: the operator's settings are the outermost ceiling).
 * - `noPrivileges`: always true (privileges are never granted, profile or not).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Type, type Static } from 'typebox';
import { loadJsonDir } from '../core/validate.ts';

export const PROFILE_LEVELS = ['low', 'medium', 'high', 'custom'] as const;
export type ProfileLevel = (typeof PROFILE_LEVELS)[number];

const constraintProps = {
  allowFilesystem: Type.Boolean({ description: 'false: sandboxes get nothing writable (a request asking for it is refused)' }),
  allowNetwork: Type.Boolean({ description: 'false: sandboxes get no network (a request asking for it is refused)' }),
  allowExec: Type.Boolean({ description: 'false: execute is refused (a request asking for it is refused)' }),
  maxProcesses: Type.Integer({
    minimum: 1,
    maximum: 65_536,
    description: 'Ceiling of resourceLimits.pids; its value when the request sets none',
  }),
  maxOpenFiles: Type.Integer({
    minimum: 16,
    maximum: 1_048_576,
    description: "RLIMIT_NOFILE of sandbox processes (capped by the operator's DIRECTOR_NOFILE)",
  }),
  readOnlyRoot: Type.Boolean({ description: 'true: a request asking for a writable root is refused' }),
  noPrivileges: Type.Literal(true, { description: 'Always true: privileges are never granted' }),
};

export const ProfileConstraintsSchema = Type.Object(constraintProps, { additionalProperties: false });
export type ProfileConstraints = Static<typeof ProfileConstraintsSchema>;

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const Description = Type.String({ maxLength: 1024 });
export const ProfileLevelSchema = Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high'), Type.Literal('custom')]);

/** Create (POST) and replace (PUT) body: every constraint is required, so a profile is always complete. */
export const ProfileBodySchema = Type.Object(
  { name: Name, description: Type.Optional(Description), level: ProfileLevelSchema, constraints: ProfileConstraintsSchema },
  { additionalProperties: false },
);
export type ProfileBody = Static<typeof ProfileBodySchema>;

/** PATCH body: any field; `constraints` is merged key by key into the stored ones. */
export const ProfilePatchSchema = Type.Object(
  {
    name: Type.Optional(Name),
    description: Type.Optional(Description),
    level: Type.Optional(ProfileLevelSchema),
    constraints: Type.Optional(
      Type.Object(
        {
          allowFilesystem: Type.Optional(constraintProps.allowFilesystem),
          allowNetwork: Type.Optional(constraintProps.allowNetwork),
          allowExec: Type.Optional(constraintProps.allowExec),
          maxProcesses: Type.Optional(constraintProps.maxProcesses),
          maxOpenFiles: Type.Optional(constraintProps.maxOpenFiles),
          readOnlyRoot: Type.Optional(constraintProps.readOnlyRoot),
          noPrivileges: Type.Optional(constraintProps.noPrivileges),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type ProfilePatch = Static<typeof ProfilePatchSchema>;

export const PROFILES_DIR = path.join(path.dirname(new URL(import.meta.url).pathname), 'profiles');

/** A shipped profile: read-only, the same id on every host and after every restart. */
export interface BuiltinProfile extends ProfileBody {
  id: string;
  description: string;
}

/** Stable `prf_` id of a built-in profile, derived from its name (16 base64url chars, like {@link newId}). */
export const builtinProfileId = (name: string): string =>
  `prf_${createHash('sha256').update(`director-builtin-profile:${name}`).digest('base64url').slice(0, 16)}`;

/** The built-in profiles in `policies/profiles/*.json`, validated: a file that does not validate is a release bug, so this throws. */
export function loadBuiltinProfiles(dir = PROFILES_DIR): BuiltinProfile[] {
  const out: BuiltinProfile[] = [];
  for (const { file, value: raw } of loadJsonDir(dir, ProfileBodySchema, 'built-in profile')) {
    if (out.some((p) => p.name.toLowerCase() === raw.name.toLowerCase()))
      throw new Error(`built-in profile ${file} repeats the name ${raw.name}`);
    out.push({ ...raw, description: raw.description ?? '', id: builtinProfileId(raw.name) });
  }
  return out;
}

/**
 * The first way `child` is wider than `parent` (allows something the parent does not, or a
 * higher limit), or null when it only narrows. A profile may only narrow its parent.
 */
export function widerThan(
  child: ProfileConstraints,
  parent: ProfileConstraints,
): { constraint: keyof ProfileConstraints; issue: string } | null {
  for (const k of ['allowFilesystem', 'allowNetwork', 'allowExec'] as const) {
    if (child[k] && !parent[k]) return { constraint: k, issue: `sets ${k}=true where its parent sets false` };
  }
  if (!child.readOnlyRoot && parent.readOnlyRoot)
    return { constraint: 'readOnlyRoot', issue: 'allows a writable root where its parent requires readOnlyRoot' };
  for (const k of ['maxProcesses', 'maxOpenFiles'] as const) {
    if (child[k] > parent[k]) return { constraint: k, issue: `sets ${k}=${child[k]} above its parent's ${parent[k]}` };
  }
  return null;
}

/** Where a ceiling comes from: the workspace's default profile or the profile named at create. */
export type CeilingLevel = 'workspace' | 'profile';

export interface Ceiling {
  level: CeilingLevel;
  id: string;
  name: string;
  constraints: ProfileConstraints;
}

/** Who refused: the level, and the profile (`id: null` for the operator's own limits). */
export interface DeniedBy {
  level: CeilingLevel | 'operator';
  id: string | null;
  name?: string;
}

export interface Denial {
  field: string;
  issue: string;
  deniedBy: DeniedBy;
}

/** What the ceilings leave of the request: booleans are "may", numbers are caps (null: none). */
export interface Narrowing {
  allowFilesystem: boolean;
  allowNetwork: boolean;
  allowExec: boolean;
  maxProcesses: number | null;
  maxOpenFiles: number | null;
  /** The innermost profile in force (the one named at create, else the workspace's). */
  profileId: string | null;
}

/** The parts of a create request that ceilings look at. */
export interface CeilingRequest {
  resourceLimits?: { pids?: number };
  securityPolicy?: {
    allowFilesystem?: boolean;
    allowNetwork?: boolean;
    allowExec?: boolean;
    allowedPaths?: string[];
    readOnlyRoot?: boolean;
  };
}

const by = (c: Ceiling): DeniedBy => ({ level: c.level, id: c.id, name: c.name });

/**
 * Checks a request against ceilings ordered outermost first (workspace, then profile). Each
 * ceiling must narrow the one before it. A refusal names the **outermost** level that refuses:
 * changing an inner profile would not help while an outer one still says no.
 */
export function checkCeilings(
  req: CeilingRequest,
  ceilings: readonly Ceiling[],
): { ok: true; narrowing: Narrowing } | { ok: false; denial: Denial } {
  const deny = (field: string, issue: string, c: Ceiling) => ({ ok: false as const, denial: { field, issue, deniedBy: by(c) } });
  for (let i = 1; i < ceilings.length; i++) {
    const parent = ceilings[i - 1]!;
    const child = ceilings[i]!;
    const wider = widerThan(child.constraints, parent.constraints);
    if (wider)
      return deny(
        'profileId',
        `profile ${child.name} ${wider.issue} (${parent.level} profile ${parent.name}); a profile can only narrow its parent`,
        parent,
      );
  }
  const sp = req.securityPolicy ?? {};
  const first = (refuses: (c: ProfileConstraints) => boolean) => ceilings.find((c) => refuses(c.constraints));
  const noFs = first((c) => !c.allowFilesystem);
  if (noFs) {
    const why = `the filesystem is not allowed by the ${noFs.level} profile ${noFs.name}`;
    if (sp.allowFilesystem === true) return deny('securityPolicy.allowFilesystem', why, noFs);
    if (sp.allowedPaths?.length) return deny('securityPolicy.allowedPaths', why, noFs);
    if (sp.readOnlyRoot === false) return deny('securityPolicy.readOnlyRoot', why, noFs);
  }
  const noNet = first((c) => !c.allowNetwork);
  if (noNet && sp.allowNetwork === true)
    return deny('securityPolicy.allowNetwork', `networking is not allowed by the ${noNet.level} profile ${noNet.name}`, noNet);
  const noExec = first((c) => !c.allowExec);
  if (noExec && sp.allowExec === true)
    return deny('securityPolicy.allowExec', `execute is not allowed by the ${noExec.level} profile ${noExec.name}`, noExec);
  const roRoot = first((c) => c.readOnlyRoot);
  if (roRoot && sp.readOnlyRoot === false)
    return deny('securityPolicy.readOnlyRoot', `the ${roRoot.level} profile ${roRoot.name} requires a read-only root`, roRoot);
  const pids = req.resourceLimits?.pids;
  const overPids = pids === undefined ? undefined : ceilings.find((c) => pids > c.constraints.maxProcesses);
  if (overPids)
    return deny(
      'resourceLimits.pids',
      `${pids} exceeds maxProcesses ${overPids.constraints.maxProcesses} of the ${overPids.level} profile ${overPids.name}`,
      overPids,
    );
  const min = (k: 'maxProcesses' | 'maxOpenFiles') => (ceilings.length ? Math.min(...ceilings.map((c) => c.constraints[k])) : null);
  return {
    ok: true,
    narrowing: {
      allowFilesystem: !noFs,
      allowNetwork: !noNet,
      allowExec: !noExec,
      maxProcesses: min('maxProcesses'),
      maxOpenFiles: min('maxOpenFiles'),
      profileId: ceilings.at(-1)?.id ?? null,
    },
  };
}
