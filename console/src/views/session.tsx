import { can } from '../api/session.ts';
import type { Checkpoint, Department, DirectorSession, Page, Sandbox, SessionUpdate, Workflow } from '../api/types.ts';
import { useAction, useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, KeyValues, Panel } from '../ui/bits.tsx';
import { formatBytes, formatDuration, formatTime } from '../ui/format.ts';

const limitsText = (l: unknown): string =>
  l && typeof l === 'object'
    ? Object.entries(l as Record<string, unknown>)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ') || '–'
    : '–';

/**
 * One session: its state (live from `session_update` on the `sessions` channel), its config, and
 * what it owns: departments, sandboxes (live from the `sandboxes` channel), workflows (live from
 * the `workflows` channel) and checkpoints.
 */
export function SessionView(props: { id: string }) {
  const { session } = useServices();
  const ses = useLoad((signal) => session.request<DirectorSession>('GET', `/v1/sessions/${props.id}`, { signal }), props.id, 30_000);
  const q = `sessionId=${props.id}&limit=100`;
  const departments = useLoad((signal) => session.request<Page<Department>>('GET', `/v1/departments?${q}`, { signal }), props.id, 30_000);
  const sandboxes = useLoad((signal) => session.request<Page<Sandbox>>('GET', `/v1/sandboxes?${q}`, { signal }), props.id, 30_000);
  const workflows = useLoad((signal) => session.request<Page<Workflow>>('GET', `/v1/workflows?${q}`, { signal }), props.id, 30_000);
  const checkpoints = useLoad((signal) => session.request<Page<Checkpoint>>('GET', `/v1/checkpoints?${q}`, { signal }), props.id, 30_000);
  useChannel('sessions', (m) => {
    if ((m.data as SessionUpdate).sessionId !== props.id) return;
    ses.reload();
    departments.reload();
  });
  useChannel('sandboxes', () => sandboxes.reload());
  useChannel('workflows', () => workflows.reload());
  const act = useAction();
  const s = ses.data;
  const open = s?.status === 'active' || s?.status === 'paused';
  const mayWrite = can(session.me, 'sessions:write');
  const setStatus = (status: 'active' | 'paused' | 'completed') =>
    act.run(async () => {
      if (status === 'completed' && !confirm(`Complete session ${props.id}? Its sandboxes stop and its runs are cancelled.`)) return;
      await session.request('PUT', `/v1/sessions/${props.id}`, { body: { status } });
      ses.reload();
    });
  const c = s?.config ?? {};
  return (
    <>
      <Panel
        title={
          <>
            Session <span class="mono">{props.id}</span> {s ? <Badge kind={s.status} title={s.reason ?? undefined} /> : null}
          </>
        }
        id="session"
        actions={
          <>
            <a href={`#/workflows?session=${props.id}`}>Workflows</a>
            <a href={`#/approvals?session=${props.id}`}>Approvals</a>
            {mayWrite && open ? (
              <>
                <button type="button" onClick={() => void setStatus(s.status === 'paused' ? 'active' : 'paused')} disabled={act.busy}>
                  {s.status === 'paused' ? 'Resume' : 'Pause'}
                </button>
                <button type="button" class="danger" onClick={() => void setStatus('completed')} disabled={act.busy}>
                  Complete
                </button>
              </>
            ) : null}
          </>
        }
      >
        <ErrorNote error={ses.error ?? act.error} />
        {s ? (
          <div class="columns">
            <KeyValues
              rows={[
                ['Name', s.name],
                ['Type', s.type],
                ['Description', s.description || '–'],
                ['Status', <span data-testid="session-status">{s.status}</span>],
                ['Reason', s.reason ?? '–'],
                ['Created', formatTime(s.createdAt)],
                ['Expires', formatTime(s.expiresAt)],
                ['Ended', formatTime(s.endedAt)],
              ]}
            />
            <KeyValues
              rows={[
                ['Timeout', typeof c.timeout === 'number' ? formatDuration(c.timeout) : '–'],
                ['Max departments', typeof c.maxDepartments === 'number' ? String(c.maxDepartments) : '–'],
                ['Resource limits', <span class="mono">{limitsText(c.resourceLimits)}</span>],
                ['Network', typeof c.networkId === 'string' ? <a href={`#/networks/${c.networkId}`}>{c.networkId}</a> : '–'],
                ['Environment', typeof c.environmentId === 'string' ? <span class="mono">{c.environmentId}</span> : '–'],
                ['Active departments', String(s.metrics.activeDepartments)],
                ['Tasks', String(s.metrics.totalTasks)],
              ]}
            />
          </div>
        ) : null}
        {s && c.metadata ? <pre class="json">{JSON.stringify(c.metadata, null, 2)}</pre> : null}
      </Panel>
      <Panel title="Departments" id="session-departments">
        <ErrorNote error={departments.error} />
        {departments.data && departments.data.items.length === 0 ? <Empty>No departments.</Empty> : null}
        {departments.data && departments.data.items.length > 0 ? (
          <table class="grid">
            <thead>
              <tr>
                <th>Id</th>
                <th>Name</th>
                <th>Domain</th>
                <th>Capabilities</th>
                <th>Limits</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {departments.data.items.map((d) => (
                <tr key={d.id} class="department-row" data-id={d.id}>
                  <td class="mono">{d.id}</td>
                  <td>{d.name}</td>
                  <td>{d.domain}</td>
                  <td>{d.capabilities.join(', ') || '–'}</td>
                  <td class="mono">{limitsText(d.config.resourceLimits)}</td>
                  <td class="nowrap">{formatTime(d.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Panel>
      <Panel title="Sandboxes" id="session-sandboxes">
        <ErrorNote error={sandboxes.error} />
        {sandboxes.data && sandboxes.data.items.length === 0 ? <Empty>No sandboxes.</Empty> : null}
        {sandboxes.data && sandboxes.data.items.length > 0 ? (
          <table class="grid">
            <thead>
              <tr>
                <th>Id</th>
                <th>Name</th>
                <th>Image</th>
                <th>Status</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {sandboxes.data.items.map((b) => (
                <tr key={b.id} class="sandbox-row" data-id={b.id} data-status={b.status}>
                  <td class="mono">
                    <a href={`#/sandboxes/${b.id}`}>{b.id}</a>
                  </td>
                  <td>{b.name}</td>
                  <td class="mono">{b.image}</td>
                  <td>
                    <Badge kind={b.status} title={b.reason ?? undefined} />
                  </td>
                  <td class="nowrap">{formatTime(b.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Panel>
      <Panel title="Workflows" id="session-workflows">
        <ErrorNote error={workflows.error} />
        {workflows.data && workflows.data.items.length === 0 ? <Empty>No workflows.</Empty> : null}
        {workflows.data && workflows.data.items.length > 0 ? (
          <table class="grid">
            <thead>
              <tr>
                <th>Id</th>
                <th>Name</th>
                <th>Steps</th>
                <th>Status</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {workflows.data.items.map((w) => (
                <tr key={w.id} class="workflow-row" data-id={w.id} data-status={w.status}>
                  <td class="mono">
                    <a href={`#/workflows/${w.id}`}>{w.id}</a>
                  </td>
                  <td>{w.name}</td>
                  <td class="num">{w.steps.length}</td>
                  <td>
                    <Badge kind={w.status} />
                  </td>
                  <td class="nowrap">{formatTime(w.updatedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Panel>
      <Panel title="Checkpoints" id="session-checkpoints">
        <ErrorNote error={checkpoints.error} />
        {checkpoints.data && checkpoints.data.items.length === 0 ? <Empty>No checkpoints.</Empty> : null}
        {checkpoints.data && checkpoints.data.items.length > 0 ? (
          <table class="grid">
            <thead>
              <tr>
                <th>Id</th>
                <th>Name</th>
                <th>Sandboxes</th>
                <th>Files</th>
                <th>Size</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {checkpoints.data.items.map((k) => (
                <tr key={k.id} class="checkpoint-row" data-id={k.id}>
                  <td class="mono">{k.id}</td>
                  <td title={k.description || undefined}>{k.name}</td>
                  <td class="mono">{k.sandboxes.map((b) => b.sandboxId).join(' ') || '–'}</td>
                  <td class="num">{k.size.files}</td>
                  <td class="num">{formatBytes(k.size.bytes)}</td>
                  <td class="nowrap">{formatTime(k.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Panel>
    </>
  );
}
