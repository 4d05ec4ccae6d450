import { useState } from 'preact/hooks';
import { can } from '../api/session.ts';
import type { Counts, Network, Proposal, RuleInForce } from '../api/types.ts';
import { useAction, useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, KeyValues, Panel } from '../ui/bits.tsx';
import { formatBytes, formatTime } from '../ui/format.ts';

const counts = (c: Counts | null | undefined) => (c ? `${c.packets} packets · ${formatBytes(c.bytes)}` : 'not counted');

const portText = (p: RuleInForce['port']) =>
  p === undefined ? 'any' : typeof p === 'number' ? String(p) : Array.isArray(p) ? p.join(', ') : `${p.from}-${p.to}`;

function Rules(props: { title: string; rules: RuleInForce[]; remote: 'destination' | 'source' }) {
  return (
    <>
      <h3>{props.title}</h3>
      {props.rules.length === 0 ? (
        <Empty>No rules: everything is denied in this direction unless the network has no policy.</Empty>
      ) : (
        <table class="grid rules">
          <thead>
            <tr>
              <th>#</th>
              <th>Action</th>
              <th>Protocol</th>
              <th>{props.remote === 'destination' ? 'Destination' : 'Source'}</th>
              <th>Port</th>
              <th>Packets</th>
              <th>Bytes</th>
            </tr>
          </thead>
          <tbody>
            {props.rules.map((r) => (
              <tr key={r.index} class="rule-row">
                <td>{r.index}</td>
                <td>
                  <Badge kind={r.action}>{r.audit ? `${r.action} (audit)` : r.action}</Badge>
                </td>
                <td>{r.protocol}</td>
                <td class="mono">{r[props.remote] ?? 'any'}</td>
                <td>{portText(r.port)}</td>
                <td class="num">{r.counter ? r.counter.packets : '–'}</td>
                <td class="num">{r.counter ? formatBytes(r.counter.bytes) : '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/**
 * One network: the policy in force as the kernel has it (`GET /v1/networks/{id}` reads it back
 * from nft, with per-rule counters), isolation, and in audit mode the proposed allow policy,
 * which one click applies.
 */
export function NetworkView(props: { id: string }) {
  const { session } = useServices();
  const net = useLoad((signal) => session.request<Network>('GET', `/v1/networks/${props.id}`, { signal }), props.id, 3000);
  const act = useAction();
  const mayWrite = can(session.me, 'networks:write');
  const n = net.data;
  const f = n?.policyInForce;
  const toggle = () =>
    act.run(async () => {
      await session.request('POST', `/v1/networks/${props.id}/${n?.isolated ? 'release' : 'isolate'}`);
      net.reload();
    });
  return (
    <>
      <Panel
        title={
          <>
            Network <span class="mono">{props.id}</span> {n?.isolated ? <Badge kind="isolated" /> : null}
          </>
        }
        id="network"
        actions={
          <>
            <a href={`#/events?network=${props.id}`}>Security events</a>
            {mayWrite && n ? (
              <button type="button" class={n.isolated ? 'primary' : 'danger'} onClick={() => void toggle()} disabled={act.busy}>
                {n.isolated ? 'Release isolation' : 'Isolate'}
              </button>
            ) : null}
          </>
        }
      >
        <ErrorNote error={net.error ?? act.error} />
        {n ? (
          <KeyValues
            rows={[
              ['Name', n.name],
              ['Subnet', <span class="mono">{n.subnet}</span>],
              ['Gateway', <span class="mono">{n.gateway}</span>],
              ['Bridge', <span class="mono">{n.bridge}</span>],
              ['DNS', n.enableDNS ? "Director's resolver" : 'off'],
              ['Sandboxes', n.sandboxes?.length ? n.sandboxes.map((id) => <a href={`#/sandboxes/${id}`}>{id} </a>) : '–'],
              ['Created', formatTime(n.createdAt)],
            ]}
          />
        ) : null}
      </Panel>
      {n ? (
        <Panel title="Policy in force (read back from the kernel)" id="policy">
          {!f ? (
            <Empty>Nothing read back: the network has no chains in force.</Empty>
          ) : (
            <>
              <KeyValues
                rows={[
                  ['Policy', n.policy ? n.policy.name : 'none: egress open except the always-denied ranges'],
                  ['Mode', f.mode ? <Badge kind={f.mode} /> : '–'],
                  ['Isolated in the kernel', f.isolated ? 'yes' : 'no'],
                  ['Allowed', <span data-testid="allowed-count">{counts(f.counters.allowed)}</span>],
                  ['Denied', <span data-testid="denied-count">{counts(f.counters.denied)}</span>],
                  ['Generation', f.generation === null ? '–' : String(f.generation)],
                ]}
              />
              <Rules title="Outbound" rules={f.outbound} remote="destination" />
              <Rules title="Inbound" rules={f.inbound} remote="source" />
            </>
          )}
        </Panel>
      ) : null}
      {n?.policy?.mode === 'audit' ? <ProposalPanel id={props.id} mayWrite={mayWrite} onApplied={net.reload} /> : null}
    </>
  );
}

/** Audit mode: the minimal allow policy for what would have been denied, applied with one click. */
function ProposalPanel(props: { id: string; mayWrite: boolean; onApplied: () => void }) {
  const { session } = useServices();
  const p = useLoad((signal) => session.request<Proposal>('GET', `/v1/networks/${props.id}/proposal`, { signal }), props.id, 5000);
  const [enforce, setEnforce] = useState(true);
  const act = useAction();
  const [applied, setApplied] = useState<string | null>(null);
  const apply = () =>
    act.run(async () => {
      if (!p.data) return;
      const policy = { ...p.data.policy, mode: enforce ? 'enforce' : 'audit' };
      await session.request('POST', `/v1/networks/${props.id}/policies`, { body: policy });
      setApplied(`Applied ${p.data.added.length} added rule(s)${enforce ? ' and switched to enforce' : ''}.`);
      props.onApplied();
      p.reload();
    });
  return (
    <Panel title="Audit proposal" id="proposal">
      <ErrorNote error={p.error ?? act.error} />
      {applied ? <p class="ok">{applied}</p> : null}
      {p.data ? (
        <>
          <p>
            {p.data.added.length} allow rule(s) would permit the traffic observed in audit mode
            {p.data.blockedByDeny.length ? `; ${p.data.blockedByDeny.length} flow(s) stay blocked by a deny rule` : ''}.
          </p>
          <pre class="diff">
            {p.data.diff.split('\n').map((line, i) => (
              <span key={i} class={line.startsWith('+') ? 'add' : line.startsWith('!') ? 'blocked' : ''}>
                {line}
                {'\n'}
              </span>
            ))}
          </pre>
          {props.mayWrite ? (
            <div class="actions">
              <label class="inline">
                <input type="checkbox" checked={enforce} onChange={(e) => setEnforce(e.currentTarget.checked)} />
                switch to enforce
              </label>
              <button type="button" class="primary" onClick={() => void apply()} disabled={act.busy || p.data.added.length === 0}>
                Apply proposal
              </button>
            </div>
          ) : null}
        </>
      ) : null}
    </Panel>
  );
}
