import { useState } from 'preact/hooks';
import { SESSION_STATUSES, type DirectorSession, type Page } from '../api/types.ts';
import { useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Panel } from '../ui/bits.tsx';
import { ListTable, StatusFilter } from '../ui/list.tsx';
import { formatTime } from '../ui/format.ts';

/** Sessions of the workspace; refreshed on every `session_update` of the hub's `sessions` channel. */
export function SessionsView() {
  const { session } = useServices();
  const [status, setStatus] = useState('');
  const list = useLoad(
    (signal) => session.request<Page<DirectorSession>>('GET', `/v1/sessions?limit=100${status ? `&status=${status}` : ''}`, { signal }),
    status,
    30_000,
  );
  useChannel('sessions', () => list.reload());
  return (
    <Panel
      title="Sessions"
      id="sessions"
      actions={<StatusFilter value={status} options={['', ...SESSION_STATUSES]} anyLabel="any but terminated" onChange={setStatus} />}
    >
      <ListTable
        page={list.data}
        error={list.error}
        empty="No sessions."
        rowClass="session-row"
        status={(s) => s.status}
        columns={[
          { header: 'Id', class: 'mono', cell: (s) => <a href={`#/sessions/${s.id}`}>{s.id}</a> },
          { header: 'Name', cell: (s) => s.name },
          { header: 'Type', cell: (s) => s.type },
          { header: 'Status', cell: (s) => <Badge kind={s.status} title={s.reason ?? undefined} /> },
          { header: 'Departments', class: 'num', cell: (s) => s.metrics.activeDepartments },
          { header: 'Tasks', class: 'num', cell: (s) => s.metrics.totalTasks },
          { header: 'Created', class: 'nowrap', cell: (s) => formatTime(s.createdAt) },
          { header: 'Expires', class: 'nowrap', cell: (s) => formatTime(s.expiresAt) },
        ]}
      />
    </Panel>
  );
}
