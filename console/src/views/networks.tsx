import type { Network, Page } from '../api/types.ts';
import { useLoad, useServices } from '../hooks.ts';
import { Badge, Panel } from '../ui/bits.tsx';
import { ListTable } from '../ui/list.tsx';
import { formatTime } from '../ui/format.ts';

export function NetworksView() {
  const { session } = useServices();
  const list = useLoad((signal) => session.request<Page<Network>>('GET', '/v1/networks?limit=100', { signal }), 'networks', 15_000);
  return (
    <Panel title="Networks" id="networks">
      <ListTable
        page={list.data}
        error={list.error}
        empty="No networks."
        rowClass="network-row"
        count={false}
        columns={[
          { header: 'Id', class: 'mono', cell: (n) => <a href={`#/networks/${n.id}`}>{n.id}</a> },
          { header: 'Name', cell: (n) => n.name },
          { header: 'Subnet', class: 'mono', cell: (n) => n.subnet },
          { header: 'Policy', cell: (n) => (n.policy ? n.policy.name : <span class="muted">none (egress open)</span>) },
          { header: 'Mode', cell: (n) => (n.policy ? <Badge kind={n.policy.mode ?? 'enforce'} /> : '–') },
          { header: 'State', cell: (n) => (n.isolated ? <Badge kind="isolated" /> : <Badge kind={n.status} />) },
          { header: 'Created', class: 'nowrap', cell: (n) => formatTime(n.createdAt) },
        ]}
      />
    </Panel>
  );
}
