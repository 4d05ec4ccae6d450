import { useState } from 'preact/hooks';
import { can } from '../api/session.ts';
import type { Page, Sandbox } from '../api/types.ts';
import { useAction, useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Panel } from '../ui/bits.tsx';
import { ListTable, StatusFilter } from '../ui/list.tsx';
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
    <Panel title="Sandboxes" id="sandboxes" actions={<StatusFilter value={status} options={STATUSES} onChange={setStatus} />}>
      <ListTable
        page={list.data}
        error={list.error ?? act.error}
        empty="No sandboxes."
        rowClass="sandbox-row"
        status={(s) => s.status}
        columns={[
          { header: 'Id', class: 'mono', cell: (s) => <a href={`#/sandboxes/${s.id}`}>{s.id}</a> },
          { header: 'Name', cell: (s) => s.name },
          { header: 'Image', class: 'mono', cell: (s) => s.image },
          { header: 'Status', cell: (s) => <Badge kind={s.status} title={s.reason ?? undefined} /> },
          {
            header: 'Network',
            class: 'mono',
            cell: (s) => (s.networkId ? <a href={`#/networks/${s.networkId}`}>{s.networkId}</a> : s.networkMode),
          },
          {
            header: 'Limits',
            class: 'nowrap',
            cell: (s) => `${s.resourceLimits.cpu} CPU · ${s.resourceLimits.memory} MiB · ${s.resourceLimits.pids} pids`,
          },
          { header: 'Created', class: 'nowrap', cell: (s) => formatTime(s.createdAt) },
          mayWrite && {
            header: '',
            class: 'nowrap',
            cell: (s) => (
              <>
                {s.status === 'running' ? (
                  <button type="button" onClick={() => void stop(s.id)} disabled={act.busy}>
                    Stop
                  </button>
                ) : null}
                <button type="button" class="danger" onClick={() => void remove(s.id)} disabled={act.busy}>
                  Delete
                </button>
              </>
            ),
          },
        ]}
      />
    </Panel>
  );
}
