import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../../runtime/config.ts';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../runtime/runtime.ts';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { runNft, tableExists } from '../../netfilter/nft.ts';

export const BUSYBOX = 'director/busybox:latest';
export const BASE = 'director/base:latest';
export const caller = { workspace: 'wsp_test', actor: 'test' };

export interface TestRuntime extends Runtime {
  dataDir: string;
  /** Removes every container this runtime instance labelled, then its data dir. */
  cleanup(): Promise<void>;
}

/** What a test's runtime is built from: its own data dir, runtime name, nft table and a silent logger. */
export interface TestSetup {
  config: Config;
  dataDir: string;
  /** A direct engine for cleanup (the runtime may be given another one). */
  engine: DockerEngine;
  logger: Logger;
}

/**
 * The configuration of a runtime for one test file: its own data dir and its own `runtimeName`,
 * so its reconcile never touches another file's containers, and cleanup removes exactly what it made.
 */
export function testSetup(overrides: Partial<Config> = {}): TestSetup {
  // A test that restarts on an existing data dir passes it; only a fresh runtime gets a new one.
  const dataDir = overrides.dataDir ?? mkdtempSync(path.join(tmpdir(), 'director-test-'));
  const runtimeName = overrides.runtimeName ?? `test-${randomBytes(4).toString('hex')}`;
  const config = loadConfig(
    {},
    {
      dataDir,
      runtimeName,
      defaultImage: BUSYBOX,
      poolSize: 0,
      poolImages: BUSYBOX,
      logLevel: 'silent',
      // Networking is opt-in per test file, each with its own nft table so files never share rules.
      networking: 'off',
      nftTable: `director_t_${runtimeName.replace(/[^a-z0-9]/g, '')}`,
      nftCheckIntervalMs: 500,
      // The exec agent as the server's default (on); DIRECTOR_TEST_EXEC_AGENT=off|on overrides it
      // for every test file (off: every execute through `docker exec`).
      ...(process.env.DIRECTOR_TEST_EXEC_AGENT === 'on' || process.env.DIRECTOR_TEST_EXEC_AGENT === 'off'
        ? { execAgent: process.env.DIRECTOR_TEST_EXEC_AGENT }
        : {}),
      ...overrides,
    },
  );
  return { config, dataDir, engine: new DockerEngine(), logger: pino({ level: process.env.DIRECTOR_TEST_LOG ?? 'silent' }) };
}

/** Adds `cleanup` to a runtime built from `setup`: close it, then remove its containers, networks, nft table and data dir. */
export function withCleanup(rt: Runtime, setup: TestSetup): TestRuntime {
  const { config, dataDir, engine } = setup;
  return Object.assign(rt, {
    dataDir,
    async cleanup() {
      await rt.close();
      await removeContainers(engine, config.runtimeName);
      await removeNetworks(engine, config.runtimeName);
      await deleteTable(config.nftTable);
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** A runtime for one test file (see {@link testSetup}); not started. */
export function testRuntime(overrides: Partial<Config> = {}, opts: RuntimeOptions = {}): TestRuntime {
  const setup = testSetup(overrides);
  return withCleanup(createRuntime({ config: setup.config, engine: setup.engine, logger: setup.logger, ...opts }), setup);
}

export async function removeContainers(engine: DockerEngine, runtimeName: string): Promise<void> {
  const left = await engine.listContainers({ [LABEL.runtime]: runtimeName });
  await Promise.all(left.map((c) => engine.removeContainer(c.id)));
}

export async function removeNetworks(engine: DockerEngine, runtimeName: string): Promise<void> {
  const left = await engine.listNetworks({ 'director.runtime': runtimeName });
  await Promise.all(left.map((n) => engine.removeNetwork(n.id)));
}

export async function deleteTable(table: string): Promise<void> {
  if (await tableExists(table)) await runNft(['delete', 'table', 'inet', table]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, stepMs = 100): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}
