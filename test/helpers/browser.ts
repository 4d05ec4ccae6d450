/**
 * Headless Chromium for the console's tests: Debian's `chromium` (installed by
 * scripts/provision.sh when tests are provisioned), driven by playwright-core. No browser is ever
 * downloaded. Each launch gets a fresh profile directory, removed on close; the flags keep the
 * browser from reaching anything but the pages the test opens (PLATFORM.md, "Browsers").
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.DIRECTOR_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Where tests write what a person should look at (screenshots of failures): DIRECTOR_TEST_OUTPUT_DIR, default .state/test-output. */
export const TEST_OUTPUT_DIR = path.resolve(
  process.env.DIRECTOR_TEST_OUTPUT_DIR ?? fileURLToPath(new URL('../../.state/test-output', import.meta.url)),
);

export interface TestBrowser extends AsyncDisposable {
  context: BrowserContext;
  page: Page;
  /** Writes a full-page PNG to the test output directory; returns its path. */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Why the browser tests cannot run here, or null when they can. */
export function browserMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (scripts/provision.sh installs chromium with DIRECTOR_PROVISION_TESTS=1)`;
}

export async function launchBrowser(opts: { outputSubdir: string }): Promise<TestBrowser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'director-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1400, height: 900 },
      timeout: 60_000,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const outDir = path.join(TEST_OUTPUT_DIR, opts.outputSubdir);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await context.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  };
  return {
    context,
    page,
    async screenshot(name: string) {
      mkdirSync(outDir, { recursive: true });
      const file = path.join(outDir, `${name.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 100)}.png`);
      // From the top: a sticky header would otherwise be drawn where the page was scrolled to.
      await page.evaluate('window.scrollTo(0, 0)').catch(() => undefined);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Every test also leaves a screenshot when it passes (to look at the pages): DIRECTOR_TEST_SCREENSHOTS=all. */
const SHOOT_ALL = process.env.DIRECTOR_TEST_SCREENSHOTS === 'all';

/**
 * `it(name, fn)` for a uvu suite of browser tests: skipped (with the reason logged by the caller)
 * when `skip` is set; a failing test leaves a screenshot named after itself.
 */
export function screenshotTests(
  test: (name: string, fn: () => Promise<void>) => void,
  skip: string | null,
  browser: () => TestBrowser | undefined,
): (name: string, fn: () => Promise<void>) => void {
  return (name, fn) => {
    if (skip) return (test as unknown as { skip: (n: string, f: () => Promise<void>) => void }).skip(name, fn);
    test(name, async () => {
      try {
        await fn();
        if (SHOOT_ALL) await browser()?.screenshot(name);
      } catch (err) {
        const file = await browser()
          ?.screenshot(name)
          .catch(() => null);
        if (file) console.error(`screenshot of the failure: ${file}`);
        throw err;
      }
    });
  };
}
