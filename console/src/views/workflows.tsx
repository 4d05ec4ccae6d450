import { RUN_STATUSES, type Page, type Workflow } from '../api/types.ts';
import { navigate, useChannel, useLoad, useServices, type Route } from '../hooks.ts';
import { Badge, Panel } from '../ui/bits.tsx';
import { ListTable, ListTitle, StatusFilter } from '../ui/list.tsx';
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
      title={<ListTitle title="Workflows" sessionId={sessionId} />}
      id="workflows"
      actions={
        <>
          <label class="inline">
            Session
            <input class="mono" placeholder="ses_…" value={sessionId} size={24} onChange={(e) => go({ session: e.currentTarget.value })} />
          </label>
          <StatusFilter value={status} options={['', ...RUN_STATUSES]} onChange={(s) => go({ status: s })} />
        </>
      }
    >
      <ListTable
        page={list.data}
        error={list.error}
        empty="No workflows."
        rowClass="workflow-row"
        status={(w) => w.status}
        columns={[
          { header: 'Id', class: 'mono', cell: (w) => <a href={`#/workflows/${w.id}`}>{w.id}</a> },
          { header: 'Name', cell: (w) => w.name },
          { header: 'Session', class: 'mono', cell: (w) => <a href={`#/sessions/${w.sessionId}`}>{w.sessionId}</a> },
          { header: 'Steps', class: 'num', cell: (w) => w.steps.length },
          { header: 'Status', cell: (w) => <Badge kind={w.status} /> },
          { header: 'Created', class: 'nowrap', cell: (w) => formatTime(w.createdAt) },
          { header: 'Updated', class: 'nowrap', cell: (w) => formatTime(w.updatedAt) },
        ]}
      />
    </Panel>
  );
}
