import type { ComponentChildren } from 'preact';

export function Badge(props: { kind: string; children?: ComponentChildren; title?: string }) {
  return (
    <span class={`badge badge-${props.kind.replace(/[^a-z0-9_-]/gi, '')}`} title={props.title}>
      {props.children ?? props.kind}
    </span>
  );
}

export function ErrorNote(props: { error: string | null | undefined }) {
  return props.error ? (
    <p class="error" role="alert">
      {props.error}
    </p>
  ) : null;
}

export function Panel(props: { title: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; id?: string }) {
  return (
    <section class="panel" id={props.id}>
      <header class="panel-head">
        <h2>{props.title}</h2>
        {props.actions ? <div class="actions">{props.actions}</div> : null}
      </header>
      <div class="panel-body">{props.children}</div>
    </section>
  );
}

export function KeyValues(props: { rows: [string, ComponentChildren][] }) {
  return (
    <dl class="kv">
      {props.rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

export const Empty = (props: { children: ComponentChildren }) => <p class="empty">{props.children}</p>;
