import { can } from '../api/session.ts';
import { APPROVAL_STATUSES, type Approval, type Page } from '../api/types.ts';
import { navigate, useAction, useChannel, useLoad, useServices, type Route } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime, summarizeInput } from '../ui/format.ts';

/** Chat events that open or settle an approval: a call asks (`tool_approval`), or its wait ends. */
const APPROVAL_MOVES = new Set(['chat_tool_approval', 'chat_tool_end', 'chat_done', 'chat_error']);

/** Listens to the `chat` channel (it needs the `chat` scope); mounted only for principals that hold it. */
function ChatFeed(props: { onMove: () => void }) {
  useChannel('chat', (m) => {
    if (APPROVAL_MOVES.has(m.type)) props.onMove();
  });
  return null;
}

/**
 * The approvals queue (`GET /v1/approvals`, pending first by default): tool calls that wait for a
 * person, with approve / deny. Live: a principal with the `chat` scope hears the hub's `chat`
 * channel, where `chat_tool_approval` announces a new request and `chat_tool_end` / `chat_done` /
 * `chat_error` the end of a wait (decided here, elsewhere, timed out or superseded), and the
 * list is re-read then, with a slow poll besides. Without `chat` (operators, auditors) there is
 * no channel that carries approvals, so the list is polled every 5 s.
 */
export function ApprovalsView(props: { route: Route }) {
  const { session } = useServices();
  const status = props.route.query.get('status') ?? 'pending';
  const sessionId = props.route.query.get('session') ?? '';
  const live = can(session.me, 'chat');
  const q = new URLSearchParams({ limit: '100' });
  if (status !== 'any') q.set('status', status);
  if (sessionId) q.set('sessionId', sessionId);
  const list = useLoad(
    (signal) => session.request<Page<Approval>>('GET', `/v1/approvals?${q.toString()}`, { signal }),
    q.toString(),
    live ? 30_000 : 5_000,
  );
  const act = useAction();
  const mayDecide = can(session.me, 'approvals:write');
  // The decision names the input hash shown here: it applies only if the call is still that call.
  const approve = (a: Approval) =>
    act.run(async () => {
      await session.request('POST', `/v1/approvals/${a.id}/approve`, { body: { inputHash: a.inputHash } });
      list.reload();
    });
  const deny = (a: Approval) =>
    act.run(async () => {
      const reason = prompt(`Deny ${a.tool} for agent ${a.agentId}? Reason (optional, told to the model):`, '');
      if (reason === null) return;
      await session.request('POST', `/v1/approvals/${a.id}/deny`, {
        body: reason ? { reason, inputHash: a.inputHash } : { inputHash: a.inputHash },
      });
      list.reload();
    });
  const go = (next: string) => {
    const p = new URLSearchParams();
    if (next !== 'pending') p.set('status', next);
    if (sessionId) p.set('session', sessionId);
    const qs = p.toString();
    navigate(`/approvals${qs ? `?${qs}` : ''}`);
  };
  return (
    <Panel
      title={
        <>
          Approvals
          {sessionId ? (
            <>
              {' '}
              of <a href={`#/sessions/${sessionId}`}>{sessionId}</a>
            </>
          ) : null}
        </>
      }
      id="approvals"
      actions={
        <>
          <span class="muted" data-testid="approvals-live">
            {live ? 'live (chat channel)' : 'refreshed every 5 s'}
          </span>
          <label class="inline">
            Status
            <select value={status} onChange={(e) => go(e.currentTarget.value)}>
              {[...APPROVAL_STATUSES, 'any'].map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        </>
      }
    >
      {live ? <ChatFeed onMove={list.reload} /> : null}
      <ErrorNote error={list.error ?? act.error} />
      {list.data && list.data.items.length === 0 ? <Empty>{status === 'pending' ? 'Nothing waits for a decision.' : 'None.'}</Empty> : null}
      {list.data && list.data.items.length > 0 ? (
        <table class="grid">
          <thead>
            <tr>
              <th>Tool</th>
              <th>Input</th>
              <th>Agent</th>
              <th>Session</th>
              <th>Status</th>
              <th>Requested</th>
              <th>{status === 'pending' ? 'Expires' : 'Decided'}</th>
              {mayDecide ? <th /> : null}
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((a) => (
              <tr key={a.id} class="approval-row" data-id={a.id} data-status={a.status}>
                <td class="mono">{a.tool}</td>
                <td class="mono details" title={JSON.stringify(a.input)}>
                  {summarizeInput(a.input)}
                </td>
                <td class="mono">{a.agentId}</td>
                <td class="mono">
                  <a href={`#/sessions/${a.sessionId}`}>{a.sessionId}</a>
                </td>
                <td>
                  <Badge kind={a.status} title={[a.decidedBy, a.reason].filter(Boolean).join(': ') || undefined} />
                </td>
                <td class="nowrap">{formatTime(a.createdAt)}</td>
                <td class="nowrap">{formatTime(a.status === 'pending' ? a.expiresAt : a.decidedAt)}</td>
                {mayDecide ? (
                  <td class="nowrap">
                    {a.status === 'pending' ? (
                      <>
                        <button type="button" class="primary" data-testid="approve" onClick={() => void approve(a)} disabled={act.busy}>
                          Approve
                        </button>
                        <button type="button" class="danger" data-testid="deny" onClick={() => void deny(a)} disabled={act.busy}>
                          Deny
                        </button>
                      </>
                    ) : null}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Panel>
  );
}
