import type { ComponentChildren } from 'preact';
import type { Page } from '../api/types.ts';
import { Empty, ErrorNote } from './bits.tsx';

/** One column of a {@link ListTable}: its header (empty for an actions column), a cell per row. */
export interface ListColumn<T> {
  header: string;
  cell: (row: T) => ComponentChildren;
  /** The cell's class (`mono`, `num`, `nowrap`, …). */
  class?: string;
  title?: (row: T) => string | undefined;
}

/**
 * A list view's body: the error, "nothing" when the page is empty, else the count and a table
 * with a row per item (`class={rowClass}`, `data-id`, and `data-status` when given, which the
 * console's tests and the live refreshes rely on).
 */
export function ListTable<T extends { id: string }>(props: {
  page: Page<T> | null;
  error: string | null | undefined;
  empty: ComponentChildren;
  columns: (ListColumn<T> | null | false)[];
  rowClass: string;
  status?: (row: T) => string;
  /** Shows "N of TOTAL" above the table; default true. */
  count?: boolean;
}) {
  const { page } = props;
  const columns = props.columns.filter((c): c is ListColumn<T> => Boolean(c));
  return (
    <>
      <ErrorNote error={props.error} />
      {page && page.items.length === 0 ? <Empty>{props.empty}</Empty> : null}
      {page && page.items.length > 0 ? (
        <>
          {props.count === false ? null : (
            <p class="muted">
              {page.items.length} of {page.total}
            </p>
          )}
          <table class="grid">
            <thead>
              <tr>{columns.map((c, i) => (c.header ? <th key={i}>{c.header}</th> : <th key={i} />))}</tr>
            </thead>
            <tbody>
              {page.items.map((row) => (
                <tr key={row.id} class={props.rowClass} data-id={row.id} data-status={props.status?.(row)}>
                  {columns.map((c, i) => (
                    <td key={i} class={c.class} title={c.title?.(row)}>
                      {c.cell(row)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </>
  );
}

/** A list's title, with "of SESSION" (linked) when the list is one session's. */
export function ListTitle(props: { title: string; sessionId?: string }) {
  return (
    <>
      {props.title}
      {props.sessionId ? (
        <>
          {' '}
          of <a href={`#/sessions/${props.sessionId}`}>{props.sessionId}</a>
        </>
      ) : null}
    </>
  );
}

/** The status filter of a list's header; `''` is shown as `anyLabel`. */
export function StatusFilter(props: { value: string; options: readonly string[]; anyLabel?: string; onChange: (status: string) => void }) {
  return (
    <label class="inline">
      Status
      <select value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {props.options.map((s) => (
          <option key={s} value={s}>
            {s || (props.anyLabel ?? 'any')}
          </option>
        ))}
      </select>
    </label>
  );
}
