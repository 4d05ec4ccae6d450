import { sparkPoints, type Sample } from './series.ts';

/** A small line chart of a series, with its latest value as text. */
export function Spark(props: { label: string; series: Sample[]; format: (v: number) => string; ceiling?: number; id?: string }) {
  const w = 240;
  const h = 48;
  const last = props.series.at(-1);
  return (
    <figure class="spark" id={props.id}>
      <figcaption>
        <span>{props.label}</span>
        <strong class="spark-value">{last ? props.format(last.value) : '–'}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} width={w} height={h} role="img" aria-label={`${props.label} over time`}>
        <line x1="0" y1={h - 0.5} x2={w} y2={h - 0.5} class="spark-axis" />
        <polyline points={sparkPoints(props.series, w, h - 2, props.ceiling ?? 0)} class="spark-line" />
      </svg>
    </figure>
  );
}
