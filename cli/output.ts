/**
 * How commands print results: `-o table` (default; aligned columns, or `KEY  value` lines for one
 * object), `-o json` (the API's data, indented; one compact line per item when streaming) or
 * `-o yaml`. Results go to stdout; messages and progress to stderr, so pipes get only data.
 */
import { stringify } from 'yaml';

export const FORMATS = ['table', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
}

export interface Out {
  write(text: string): void;
}

/** A cell's text: `-` for nothing, lists joined with commas, objects as compact JSON. */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return v.length ? v.map(cell).join(',') : '-';
  if (typeof v === 'string') return v.replace(/\s+/g, ' ');
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

/** Rows as aligned columns with an upper-case header line, as kubectl prints them. */
export function table<T>(rows: T[], columns: Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(c.value(r))));
  const head = columns.map((c) => c.header.toUpperCase());
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  // The last column is not padded, so no line ends in spaces.
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ');
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}

/** One object as `LABEL   value` lines. */
export function fields(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}   ${cell(v)}`.trimEnd()).join('\n') + '\n';
}

/** A value in a data format (json or yaml). */
export function serialize(format: 'json' | 'yaml', value: unknown): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value, { lineWidth: 0 });
}

/** Prints a list: a table, or the raw items as json/yaml. */
export function printList<T>(out: Out, format: Format, rows: T[], columns: Column<T>[], raw: unknown = rows): void {
  if (format === 'table') out.write(rows.length ? table(rows, columns) : 'No resources found.\n');
  else out.write(serialize(format, raw));
}

/** Prints one object: `LABEL value` lines, or the raw object as json/yaml. */
export function printObject(out: Out, format: Format, raw: unknown, pairs: [string, unknown][]): void {
  out.write(format === 'table' ? fields(pairs) : serialize(format, raw));
}

/** One item of a stream: compact JSON per line (NDJSON), a YAML document, or a table row without header. */
export function streamItem(format: Format, value: unknown, row: () => string): string {
  if (format === 'json') return `${JSON.stringify(value)}\n`;
  if (format === 'yaml') return `---\n${stringify(value, { lineWidth: 0 })}`;
  return `${row()}\n`;
}

/** `2m`, `3h`, `5d` since an ISO time, as kubectl shows ages. */
export function age(iso: string | null | undefined, nowMs = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/**
 * A duration in milliseconds as the CLI prints every one (steps, runs, timeouts, limits):
 * `840ms`, `1.2s`, `5min 3s`, `2h 5min`, `1d 2h`; `-` when unknown. JSON and YAML output keep
 * the API's milliseconds.
 */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v}ms`;
  const tenths = Math.round(v / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s`;
  const s = Math.round(v / 1000);
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small ? `${big}${bigUnit} ${small}${smallUnit}` : `${big}${bigUnit}`;
  if (s < 3600) return two(Math.floor(s / 60), 'min', s % 60, 's');
  if (s < 86_400) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'min');
  return two(Math.floor(s / 86_400), 'd', Math.floor((s % 86_400) / 3600), 'h');
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)}${units[i]}`;
}
