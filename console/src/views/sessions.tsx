import { useState } from 'preact/hooks';
import { SESSION_STATUSES, type DirectorSession, type Page } from '../api/types.ts';
import { useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
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
      actions={
        <label class="inline">
          Status
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            {['', ...SESSION_STATUSES].map((s) => (
              <option key={s} value={s}>
                {s || 'any but terminated'}
              </option>
            ))}
          </select>
        </label>
      }
    >
      <ErrorNote error={list.error} />
      {list.data && list.data.items.length === 0 ? <Empty>No sessions.</Empty> : null}
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
                <th>Type</th>
                <th>Status</th>
                <th>Departments</th>
                <th>Tasks</th>
                <th>Created</th>
                <th>Expires</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((s) => (
                <tr key={s.id} class="session-row" data-id={s.id} data-status={s.status}>
                  <td class="mono">
                    <a href={`#/sessions/${s.id}`}>{s.id}</a>
                  </td>
                  <td>{s.name}</td>
                  <td>{s.type}</td>
                  <td>
                    <Badge kind={s.status} title={s.reason ?? undefined} />
                  </td>
                  <td class="num">{s.metrics.activeDepartments}</td>
                  <td class="num">{s.metrics.totalTasks}</td>
                  <td class="nowrap">{formatTime(s.createdAt)}</td>
                  <td class="nowrap">{formatTime(s.expiresAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </Panel>
  );
}
