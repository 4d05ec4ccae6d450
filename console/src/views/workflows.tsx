import { RUN_STATUSES, type Page, type Workflow } from '../api/types.ts';
import { navigate, useChannel, useLoad, useServices, type Route } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime } from '../ui/format.ts';

/**
 * Workflows, of one session (`#/workflows?session=ses_…`) or of all; the status column is the
 * latest run's, refreshed on every message of the hub's `workflows` channel.
 */
export function WorkflowsView(props: { route: Route }) {
  const { session } = useServices();
  const sessionId = props.route.query.get('session') ?? '';
  const status = props.route.query.get('status') ?? '';
  const q = new URLSearchParams({ limit: '100' });
  if (sessionId) q.set('sessionId', sessionId);
  if (status) q.set('status', status);
  const list = useLoad(
    (signal) => session.request<Page<Workflow>>('GET', `/v1/workflows?${q.toString()}`, { signal }),
    q.toString(),
    30_000,
  );
  useChannel('workflows', () => list.reload());
  const go = (next: { session?: string; status?: string }) => {
    const p = new URLSearchParams();
    const s = (next.session ?? sessionId).trim();
    const st = next.status ?? status;
    if (s) p.set('session', s);
    if (st) p.set('status', st);
    const qs = p.toString();
    navigate(`/workflows${qs ? `?${qs}` : ''}`);
  };
  return (
    <Panel
      title={
        <>
          Workflows
          {sessionId ? (
            <>
              {' '}
              of <a href={`#/sessions/${sessionId}`}>{sessionId}</a>
            </>
          ) : null}
        </>
      }
      id="workflows"
      actions={
        <>
          <label class="inline">
            Session
            <input class="mono" placeholder="ses_…" value={sessionId} size={24} onChange={(e) => go({ session: e.currentTarget.value })} />
          </label>
          <label class="inline">
            Status
            <select value={status} onChange={(e) => go({ status: e.currentTarget.value })}>
              {['', ...RUN_STATUSES].map((s) => (
                <option key={s} value={s}>
                  {s || 'any'}
                </option>
              ))}
            </select>
          </label>
        </>
      }
    >
      <ErrorNote error={list.error} />
      {list.data && list.data.items.length === 0 ? <Empty>No workflows.</Empty> : null}
      {list.data && list.data.items.length > 0 ? (
        <>
          <p class="muted">
            {list.data.items.length} of {list.data.total}
          </p>
          <table class="grid">
            <thead>
              <tr>
                <th>Id</th>
                <th>Name</th>
                <th>Session</th>
                <th>Steps</th>
                <th>Status</th>
                <th>Created</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((w) => (
                <tr key={w.id} class="workflow-row" data-id={w.id} data-status={w.status}>
                  <td class="mono">
                    <a href={`#/workflows/${w.id}`}>{w.id}</a>
                  </td>
                  <td>{w.name}</td>
                  <td class="mono">
                    <a href={`#/sessions/${w.sessionId}`}>{w.sessionId}</a>
                  </td>
                  <td class="num">{w.steps.length}</td>
                  <td>
                    <Badge kind={w.status} />
                  </td>
                  <td class="nowrap">{formatTime(w.createdAt)}</td>
                  <td class="nowrap">{formatTime(w.updatedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </Panel>
  );
}
