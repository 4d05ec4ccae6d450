/**
 * The CLI's stored login: `config.json` in `$DIRECTOR_CONFIG_DIR`, else
 * `$XDG_CONFIG_HOME/director`, else `~/.config/director`. The directory is 0700 and the file 0600
 * (it holds tokens); writes go through a temporary file and a rename, so a crash never leaves a
 * half-written file.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export interface StoredConfig {
  /** The API address logged in to. */
  url?: string;
  username?: string;
  /** Workspace chosen with `--workspace` at login or `director workspace use`; sent on every request. */
  workspace?: string;
  token?: string;
  tokenExpiresAt?: string;
  refreshToken?: string;
  refreshExpiresAt?: string;
}

export function configDir(env: NodeJS.ProcessEnv): string {
  if (env.DIRECTOR_CONFIG_DIR) return env.DIRECTOR_CONFIG_DIR;
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config');
  return path.join(base, 'director');
}

export const configFile = (dir: string) => path.join(dir, 'config.json');

export function loadConfig(dir: string): StoredConfig {
  let text: string;
  try {
    text = readFileSync(configFile(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const parsed = JSON.parse(text) as unknown;
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed : {};
}

export function saveConfig(dir: string, cfg: StoredConfig): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = configFile(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}
