/** A bounded time series of samples (metrics over time), and its drawing as an SVG polyline. */

export interface Sample {
  atMs: number;
  value: number;
}

/** Appends `s`, keeping at most `max` samples (the oldest go first). Returns a new array. */
export function pushSample(series: readonly Sample[], s: Sample, max: number): Sample[] {
  const next = [...series, s];
  return next.length > max ? next.slice(next.length - max) : next;
}

/**
 * The `points` attribute of a polyline drawing `series` in a `width` × `height` box: time on x
 * (oldest at the left edge, newest at the right), value on y from 0 to `ceiling` (or the series'
 * maximum when larger, so a spike never leaves the box).
 */
export function sparkPoints(series: readonly Sample[], width: number, height: number, ceiling = 0): string {
  if (series.length === 0) return '';
  const t0 = series[0]!.atMs;
  const span = Math.max(1, series[series.length - 1]!.atMs - t0);
  const top = Math.max(ceiling, ...series.map((s) => s.value)) || 1;
  const round = (v: number) => Math.round(v * 10) / 10;
  return series
    .map((s) => {
      const x = series.length === 1 ? width : ((s.atMs - t0) / span) * width;
      const y = height - (Math.max(0, s.value) / top) * height;
      return `${round(x)},${round(y)}`;
    })
    .join(' ');
}
