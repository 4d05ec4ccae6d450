/** Display helpers: pure, so they are unit-tested without a browser. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

/** `2026-12-06 13:20:01` in the browser's time zone (ISO-like, sortable, unambiguous). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A compact one-line summary of an event's details (`key=value …`), values cut to 60 characters. */
export function summarizeDetails(details: Record<string, unknown>, max = 6): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(details)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') continue;
    const text = String(v);
    parts.push(`${k}=${text.length > 60 ? `${text.slice(0, 59)}…` : text}`);
    if (parts.length >= max) break;
  }
  return parts.join(' ');
}

/**
 * A tool call's input on one line: a `command` is shown as the shell line it is (argv joined
 * by spaces), any other input as compact JSON; cut to `max` characters.
 */
export function summarizeInput(input: unknown, max = 160): string {
  const o = input !== null && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : null;
  const cmd = o?.command;
  let text: string;
  if (typeof cmd === 'string') text = cmd;
  else if (Array.isArray(cmd) && cmd.every((c) => typeof c === 'string')) text = cmd.join(' ');
  else if (typeof input === 'string') text = input;
  else text = JSON.stringify(input) ?? String(input);
  const extra = o && cmd !== undefined ? Object.keys(o).filter((k) => k !== 'command') : [];
  if (extra.length) text += ` (${extra.map((k) => `${k}=${JSON.stringify(o![k])}`).join(' ')})`;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A duration in ms that is usually short: `850 ms`, `2.4 s`, then as {@link formatDuration}. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(ms);
}
