import { useState } from 'preact/hooks';
import { can } from '../api/session.ts';
import type { Page, Sandbox } from '../api/types.ts';
import { useAction, useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime } from '../ui/format.ts';

const STATUSES = ['', 'running', 'creating', 'stopping', 'stopped', 'failed'] as const;

/** Sandboxes of the workspace; refreshed on every lifecycle message of the hub's `sandboxes` channel. */
export function SandboxesView() {
  const { session } = useServices();
  const [status, setStatus] = useState('');
  const list = useLoad(
    (signal) => session.request<Page<Sandbox>>('GET', `/v1/sandboxes?limit=100${status ? `&status=${status}` : ''}`, { signal }),
    status,
    15_000,
  );
  useChannel('sandboxes', () => list.reload());
  const act = useAction();
  const mayWrite = can(session.me, 'sandboxes:write');

  const stop = (id: string) => act.run(async () => session.request('POST', `/v1/sandboxes/${id}/stop`).then(list.reload));
  const remove = (id: string) =>
    act.run(async () => {
      if (!confirm(`Delete sandbox ${id}? Its container and files are removed.`)) return;
      await session.request('DELETE', `/v1/sandboxes/${id}`);
      list.reload();
    });

  return (
    <Panel
      title="Sandboxes"
      id="sandboxes"
      actions={
        <label class="inline">
          Status
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
      }
    >
      <ErrorNote error={list.error ?? act.error} />
      {list.data && list.data.items.length === 0 ? <Empty>No sandboxes.</Empty> : null}
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
                <th>Image</th>
                <th>Status</th>
                <th>Network</th>
                <th>Limits</th>
                <th>Created</th>
                {mayWrite ? <th /> : null}
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((s) => (
                <tr key={s.id} class="sandbox-row" data-id={s.id} data-status={s.status}>
                  <td class="mono">
                    <a href={`#/sandboxes/${s.id}`}>{s.id}</a>
                  </td>
                  <td>{s.name}</td>
                  <td class="mono">{s.image}</td>
                  <td>
                    <Badge kind={s.status} title={s.reason ?? undefined} />
                  </td>
                  <td class="mono">{s.networkId ? <a href={`#/networks/${s.networkId}`}>{s.networkId}</a> : s.networkMode}</td>
                  <td class="nowrap">
                    {s.resourceLimits.cpu} CPU · {s.resourceLimits.memory} MiB · {s.resourceLimits.pids} pids
                  </td>
                  <td class="nowrap">{formatTime(s.createdAt)}</td>
                  {mayWrite ? (
                    <td class="nowrap">
                      {s.status === 'running' ? (
                        <button type="button" onClick={() => void stop(s.id)} disabled={act.busy}>
                          Stop
                        </button>
                      ) : null}
                      <button type="button" class="danger" onClick={() => void remove(s.id)} disabled={act.busy}>
                        Delete
                      </button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </Panel>
  );
}
