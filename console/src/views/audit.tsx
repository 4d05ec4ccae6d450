import { useEffect, useState } from 'preact/hooks';
import type { AuditEntry, AuditVerification } from '../api/types.ts';
import { useAction, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime } from '../ui/format.ts';

interface AuditPage {
  items: AuditEntry[];
  nextCursor: number | null;
}

const PAGE = 100;

/** The hash-chained audit log: filtered, paged oldest first, and verified end to end by the server. */
export function AuditView() {
  const { session } = useServices();
  const [filters, setFilters] = useState({ actor: '', action: '', outcome: '' });
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [verification, setVerification] = useState<AuditVerification | null>(null);
  const load = useAction();
  const verify = useAction();

  const query = (after: number | null) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const [k, v] of Object.entries(filters)) if (v.trim()) q.set(k, v.trim());
    if (after !== null) q.set('after', String(after));
    return q.toString();
  };
  const fetchPage = (after: number | null) =>
    load.run(async () => {
      const page = await session.request<AuditPage>('GET', `/v1/audit-logs?${query(after)}`);
      setEntries((prev) => (after === null ? page.items : [...(prev ?? []), ...page.items]));
      setNext(page.items.length === PAGE ? page.nextCursor : null);
    });
  const runVerify = () =>
    verify.run(async () => {
      setVerification(null);
      setVerification(await session.request<AuditVerification>('GET', '/v1/audit-logs/verify'));
    });

  // Once, when the view opens; later pages and filters are fetched on request.
  useEffect(() => void fetchPage(null), []);
  const set = (k: keyof typeof filters) => (e: Event) => setFilters((f) => ({ ...f, [k]: (e.currentTarget as HTMLInputElement).value }));

  return (
    <>
      <Panel
        title="Audit chain"
        id="audit-verify"
        actions={
          <button type="button" class="primary" onClick={() => void runVerify()} disabled={verify.busy} data-testid="verify">
            {verify.busy ? 'Verifying…' : 'Verify chain'}
          </button>
        }
      >
        <ErrorNote error={verify.error} />
        {verification === null ? (
          <p class="muted">Recomputes every entry's hash on the server and checks each links to the one before it.</p>
        ) : verification.ok ? (
          <p class="ok" data-testid="verify-result">
            Chain intact: {verification.entries} entries, head <span class="mono">{verification.head?.slice(0, 16)}…</span>
          </p>
        ) : (
          <p class="error" data-testid="verify-result">
            Chain broken at entry {verification.brokenAt?.seq} ({verification.brokenAt?.id}): {verification.reason}
          </p>
        )}
      </Panel>
      <Panel title="Audit log" id="audit">
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            void fetchPage(null);
          }}
        >
          <label>
            Actor
            <input value={filters.actor} onInput={set('actor')} placeholder="usr_… or key_…" />
          </label>
          <label>
            Action
            <input value={filters.action} onInput={set('action')} placeholder="POST /v1/sandboxes" />
          </label>
          <label>
            Outcome
            <select value={filters.outcome} onChange={set('outcome')}>
              <option value="">any</option>
              <option value="success">success</option>
              <option value="denied">denied</option>
              <option value="error">error</option>
            </select>
          </label>
          <button type="submit">Apply</button>
        </form>
        <ErrorNote error={load.error} />
        {entries && entries.length === 0 ? <Empty>No entries.</Empty> : null}
        {entries && entries.length > 0 ? (
          <table class="grid">
            <thead>
              <tr>
                <th>#</th>
                <th>Time</th>
                <th>Actor</th>
                <th>Action</th>
                <th>Target</th>
                <th>Outcome</th>
                <th>Status</th>
                <th>Hash</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((a) => (
                <tr key={a.seq} class="audit-row">
                  <td>{a.seq}</td>
                  <td class="nowrap">{formatTime(a.ts)}</td>
                  <td class="mono">{a.username ?? a.actor ?? '–'}</td>
                  <td class="mono">{a.action}</td>
                  <td class="mono">{a.target ?? '–'}</td>
                  <td>
                    <Badge kind={a.outcome} />
                  </td>
                  <td>{a.status}</td>
                  <td class="mono" title={`prev ${a.prevHash}`}>
                    {a.hash.slice(0, 12)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {next !== null ? (
          <button type="button" onClick={() => void fetchPage(next)} disabled={load.busy}>
            Load more
          </button>
        ) : null}
      </Panel>
    </>
  );
}
