import type { Network, Page } from '../api/types.ts';
import { useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime } from '../ui/format.ts';

export function NetworksView() {
  const { session } = useServices();
  const list = useLoad((signal) => session.request<Page<Network>>('GET', '/v1/networks?limit=100', { signal }), 'networks', 15_000);
  return (
    <Panel title="Networks" id="networks">
      <ErrorNote error={list.error} />
      {list.data && list.data.items.length === 0 ? <Empty>No networks.</Empty> : null}
      {list.data && list.data.items.length > 0 ? (
        <table class="grid">
          <thead>
            <tr>
              <th>Id</th>
              <th>Name</th>
              <th>Subnet</th>
              <th>Policy</th>
              <th>Mode</th>
              <th>State</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((n) => (
              <tr key={n.id} class="network-row" data-id={n.id}>
                <td class="mono">
                  <a href={`#/networks/${n.id}`}>{n.id}</a>
                </td>
                <td>{n.name}</td>
                <td class="mono">{n.subnet}</td>
                <td>{n.policy ? n.policy.name : <span class="muted">none (egress open)</span>}</td>
                <td>{n.policy ? <Badge kind={n.policy.mode ?? 'enforce'} /> : '–'}</td>
                <td>{n.isolated ? <Badge kind="isolated" /> : <Badge kind={n.status} />}</td>
                <td class="nowrap">{formatTime(n.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Panel>
  );
}
