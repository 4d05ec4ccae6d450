import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  builtinProfileId,
  checkCeilings,
  loadBuiltinProfiles,
  widerThan,
  type Ceiling,
  type ProfileConstraints,
} from '../../../policies/profiles.ts';
import { createEventSink } from '../../../runtime/events.ts';
import { resolveSpec } from '../../../runtime/sandbox/spec.ts';
import { ProfileService } from '../../../runtime/security/profiles.ts';
import { openDb } from '../../../core/db.ts';
import { defaultConfig, directorErrorOf } from '../runtime/support.ts';

const test = suite('security profiles');
const cfg = defaultConfig();

const OPEN: ProfileConstraints = {
  allowFilesystem: true,
  allowNetwork: true,
  allowExec: true,
  maxProcesses: 1024,
  maxOpenFiles: 4096,
  readOnlyRoot: false,
  noPrivileges: true,
};
const profile = (over: Partial<ProfileConstraints> = {}, id = 'prf_profileprofile01'): Ceiling => ({
  level: 'profile',
  id,
  name: 'p',
  constraints: { ...OPEN, ...over },
});
const workspace = (over: Partial<ProfileConstraints> = {}, id = 'prf_workspaceprofile'): Ceiling => ({
  level: 'workspace',
  id,
  name: 'w',
  constraints: { ...OPEN, ...over },
});

/** Resolves `raw` under ceilings, expecting a refusal; returns its details. */
const refusal = (raw: Record<string, unknown>, ceilings: Ceiling[]) => {
  const err = directorErrorOf(() =>
    resolveSpec({ ...raw, ...(ceilings.some((c) => c.level === 'profile') ? { profileId: ceilings.at(-1)!.id } : {}) }, cfg, ceilings),
  );
  assert.is(err.code, 'VALIDATION_ERROR');
  assert.is(err.details?.policyViolation, true);
  return err.details as { field: string; deniedBy: { level: string; id: string | null } };
};
const resolved = (raw: Record<string, unknown>, ceilings: Ceiling[]) =>
  resolveSpec({ ...raw, ...(ceilings.some((c) => c.level === 'profile') ? { profileId: ceilings.at(-1)!.id } : {}) }, cfg, ceilings);

// Each constraint: a request asking for more is refused naming the field; a silent request gets the ceiling; a narrower one is kept.
const TABLE: {
  constraint: Partial<ProfileConstraints>;
  wider: Record<string, unknown>;
  field: string;
  narrower: Record<string, unknown>;
  check: (s: ReturnType<typeof resolveSpec>, silent: boolean) => void;
}[] = [
  {
    constraint: { allowNetwork: false },
    wider: { securityPolicy: { allowNetwork: true } },
    field: 'securityPolicy.allowNetwork',
    narrower: { securityPolicy: { allowNetwork: false } },
    check: (s) => {
      assert.is(s.securityPolicy.allowNetwork, false);
      assert.is(s.networkMode, 'none');
    },
  },
  {
    constraint: { allowFilesystem: false },
    wider: { securityPolicy: { allowFilesystem: true } },
    field: 'securityPolicy.allowFilesystem',
    narrower: { securityPolicy: { allowFilesystem: false } },
    check: (s) => {
      assert.is(s.securityPolicy.allowFilesystem, false);
      assert.equal(s.securityPolicy.allowedPaths, []);
      assert.is(s.securityPolicy.readOnlyRoot, true);
    },
  },
  {
    constraint: { allowExec: false },
    wider: { securityPolicy: { allowExec: true } },
    field: 'securityPolicy.allowExec',
    narrower: { securityPolicy: { allowExec: false } },
    check: (s) => assert.is(s.securityPolicy.allowExec, false),
  },
  {
    constraint: { readOnlyRoot: true },
    wider: { securityPolicy: { readOnlyRoot: false } },
    field: 'securityPolicy.readOnlyRoot',
    narrower: { securityPolicy: { readOnlyRoot: true } },
    check: (s) => assert.is(s.securityPolicy.readOnlyRoot, true),
  },
  {
    constraint: { maxProcesses: 32 },
    wider: { resourceLimits: { pids: 33 } },
    field: 'resourceLimits.pids',
    narrower: { resourceLimits: { pids: 16 } },
    check: (s, silent) => assert.is(s.resourceLimits.pids, silent ? 32 : 16),
  },
];

for (const row of TABLE) {
  const name = Object.keys(row.constraint)[0]!;
  test(`${name}: a request asking for more is refused naming ${row.field} and the profile`, () => {
    const d = refusal(row.wider, [profile(row.constraint)]);
    assert.is(d.field, row.field);
    assert.equal(d.deniedBy, { level: 'profile', id: 'prf_profileprofile01', name: 'p' });
  });
  test(`${name}: a silent request gets the ceiling and a narrower one is kept`, () => {
    row.check(resolved({}, [profile(row.constraint)]), true);
    row.check(resolved(row.narrower, [profile(row.constraint)]), false);
  });
}

test('allowFilesystem=false also refuses writable paths and a writable root', () => {
  assert.is(
    refusal({ securityPolicy: { allowedPaths: ['/app'] } }, [profile({ allowFilesystem: false })]).field,
    'securityPolicy.allowedPaths',
  );
  assert.is(
    refusal({ securityPolicy: { readOnlyRoot: false } }, [profile({ allowFilesystem: false })]).field,
    'securityPolicy.readOnlyRoot',
  );
});

test("maxOpenFiles sets nofile, never above the operator's DIRECTOR_NOFILE", () => {
  assert.is(resolved({}, [profile({ maxOpenFiles: 50 })]).nofile, 50);
  assert.is(resolved({}, [profile({ maxOpenFiles: 65536 })]).nofile, cfg.nofile);
  assert.is(resolveSpec({}, cfg).nofile, undefined);
});

test('maxProcesses above the operator maximum leaves the operator maximum as the default', () => {
  const small = defaultConfig({ maxPids: 100, defaultPids: 50 });
  assert.is(resolveSpec({ profileId: 'prf_profileprofile01' }, small, [profile({ maxProcesses: 500 })]).resourceLimits.pids, 100);
});

test('the spec records the innermost profile in force', () => {
  assert.is(resolved({}, [workspace(), profile()]).profileId, 'prf_profileprofile01');
  assert.is(resolveSpec({}, cfg, [workspace()]).profileId, 'prf_workspaceprofile');
  assert.is(resolveSpec({}, cfg).profileId, undefined);
});

test('a denial names the level that refused: workspace, profile or operator', () => {
  assert.equal(
    directorErrorOf(() => resolveSpec({ securityPolicy: { allowNetwork: true } }, cfg, [workspace({ allowNetwork: false })])).details
      ?.deniedBy,
    { level: 'workspace', id: 'prf_workspaceprofile', name: 'w' },
  );
  assert.is(refusal({ securityPolicy: { allowExec: true } }, [workspace(), profile({ allowExec: false })]).deniedBy.level, 'profile');
  assert.equal(refusal({ resourceLimits: { pids: cfg.maxPids + 1 } }, [profile({ maxProcesses: 32 })]).deniedBy, {
    level: 'operator',
    id: null,
  });
});

test('when workspace and profile both refuse, the outermost (workspace) is named', () => {
  const d = refusal({ securityPolicy: { allowNetwork: true } }, [workspace({ allowNetwork: false }), profile({ allowNetwork: false })]);
  assert.is(d.deniedBy.level, 'workspace');
});

test('a profile wider than the workspace default is refused at create, naming the workspace', () => {
  const d = refusal({}, [workspace({ allowNetwork: false }), profile({ allowNetwork: true })]);
  assert.is(d.field, 'profileId');
  assert.is(d.deniedBy.level, 'workspace');
  assert.is(refusal({}, [workspace({ maxProcesses: 64 }), profile({ maxProcesses: 65 })]).field, 'profileId');
});

test('widerThan finds each way a child can exceed its parent and accepts narrowing', () => {
  const parent: ProfileConstraints = {
    ...OPEN,
    allowNetwork: false,
    allowFilesystem: false,
    allowExec: false,
    readOnlyRoot: true,
    maxProcesses: 64,
    maxOpenFiles: 256,
  };
  const cases: [Partial<ProfileConstraints>, string][] = [
    [{ allowNetwork: true }, 'allowNetwork'],
    [{ allowFilesystem: true }, 'allowFilesystem'],
    [{ allowExec: true }, 'allowExec'],
    [{ readOnlyRoot: false }, 'readOnlyRoot'],
    [{ maxProcesses: 65 }, 'maxProcesses'],
    [{ maxOpenFiles: 257 }, 'maxOpenFiles'],
  ];
  for (const [over, k] of cases) assert.is(widerThan({ ...parent, ...over }, parent)?.constraint, k);
  assert.is(widerThan(parent, parent), null);
  assert.is(widerThan({ ...parent, maxProcesses: 8 }, OPEN), null);
});

test('checkCeilings without ceilings leaves everything to the request', () => {
  const r = checkCeilings({ securityPolicy: { allowNetwork: true } }, []);
  assert.equal(r, {
    ok: true,
    narrowing: { allowFilesystem: true, allowNetwork: true, allowExec: true, maxProcesses: null, maxOpenFiles: null, profileId: null },
  });
});

test('a profileId that no ceiling carries is refused', () => {
  const err = directorErrorOf(() => resolveSpec({ profileId: 'prf_AAAAAAAAAAAAAAAA' }, cfg, []));
  assert.is(err.details?.field, 'profileId');
});

test('the shipped profiles load with stable ids and each narrows the one below it', () => {
  const b = loadBuiltinProfiles();
  const by = (n: string) => b.find((p) => p.name === n)!;
  assert.ok(['low', 'medium', 'high', 'locked-down'].every((n) => by(n)));
  assert.is(by('high').id, builtinProfileId('high'));
  assert.match(by('high').id, /^prf_[A-Za-z0-9_-]{16}$/);
  assert.is(widerThan(by('medium').constraints, by('low').constraints), null);
  assert.is(widerThan(by('high').constraints, by('medium').constraints), null);
  assert.is(widerThan(by('locked-down').constraints, by('high').constraints), null);
});

function service() {
  const db = openDb('/tmp/x', ':memory:');
  const events = createEventSink(db, { nowMs: () => 1_700_000_000_000 });
  return { db, events, svc: new ProfileService(db, { nowMs: () => 1_700_000_000_000 }, events, loadBuiltinProfiles()) };
}
const body = { name: 'strict', level: 'custom' as const, constraints: { ...OPEN, allowNetwork: false, maxProcesses: 32 } };
const ws1 = { workspace: 'wsp_1', actor: 'usr_1' };

test('profiles: built-ins are visible to every workspace and read-only', () => {
  const { svc } = service();
  const high = svc.list('wsp_any').find((p) => p.name === 'high')!;
  assert.is(high.builtin, true);
  assert.is(directorErrorOf(() => svc.update(ws1, high.id, { description: 'x' }, 'merge')).code, 'AUTHORIZATION_ERROR');
  assert.is(directorErrorOf(() => svc.delete(ws1, high.id)).code, 'AUTHORIZATION_ERROR');
  assert.is(directorErrorOf(() => svc.create(ws1, { ...body, name: 'HIGH' })).code, 'CONFLICT');
});

test('profiles: create, patch (constraints merge), replace and delete within one workspace', () => {
  const { svc, events } = service();
  const p = svc.create(ws1, body);
  assert.match(p.id, /^prf_/);
  assert.is(directorErrorOf(() => svc.get('wsp_2', p.id)).code, 'NOT_FOUND');
  assert.is(directorErrorOf(() => svc.create(ws1, body)).code, 'CONFLICT');
  const patched = svc.update(ws1, p.id, { constraints: { maxOpenFiles: 99 } }, 'merge');
  assert.equal(patched.constraints, { ...body.constraints, maxOpenFiles: 99 });
  const replaced = svc.update(ws1, p.id, { ...body, name: 'renamed', constraints: OPEN }, 'replace');
  assert.is(replaced.name, 'renamed');
  assert.equal(svc.get(ws1.workspace, p.id).constraints, OPEN);
  svc.delete(ws1, p.id);
  assert.is(directorErrorOf(() => svc.get(ws1.workspace, p.id)).code, 'NOT_FOUND');
  assert.equal(
    events.list({ limit: 10 }).map((e) => e.type),
    ['profile_created', 'profile_updated', 'profile_updated', 'profile_deleted'],
  );
});

test('profiles: the workspace default is the outermost ceiling and cannot be deleted while in use', () => {
  const { svc } = service();
  const p = svc.create(ws1, body);
  assert.equal(svc.ceilingsFor('wsp_1', undefined), []);
  svc.setWorkspaceDefault(ws1, p.id);
  const high = svc.list('wsp_1').find((x) => x.name === 'high')!;
  assert.equal(
    svc.ceilingsFor('wsp_1', high.id).map((c) => [c.level, c.id]),
    [
      ['workspace', p.id],
      ['profile', high.id],
    ],
  );
  assert.equal(svc.ceilingsFor('wsp_2', undefined), []);
  assert.is(directorErrorOf(() => svc.delete(ws1, p.id)).code, 'CONFLICT');
  assert.is(directorErrorOf(() => svc.ceilingsFor('wsp_1', 'prf_AAAAAAAAAAAAAAAA')).details?.field, 'profileId');
  svc.setWorkspaceDefault(ws1, null);
  assert.is(svc.workspaceDefault('wsp_1'), null);
});

test.run();
