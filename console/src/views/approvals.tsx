import { can } from '../api/session.ts';
import { APPROVAL_STATUSES, type Approval, type Page } from '../api/types.ts';
import { navigate, useAction, useChannel, useLoad, useServices, type Route } from '../hooks.ts';
import { Badge, Panel } from '../ui/bits.tsx';
import { ListTable, ListTitle, StatusFilter } from '../ui/list.tsx';
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
      title={<ListTitle title="Approvals" sessionId={sessionId} />}
      id="approvals"
      actions={
        <>
          <span class="muted" data-testid="approvals-live">
            {live ? 'live (chat channel)' : 'refreshed every 5 s'}
          </span>
          <StatusFilter value={status} options={[...APPROVAL_STATUSES, 'any']} onChange={go} />
        </>
      }
    >
      {live ? <ChatFeed onMove={list.reload} /> : null}
      <ListTable
        page={list.data}
        error={list.error ?? act.error}
        empty={status === 'pending' ? 'Nothing waits for a decision.' : 'None.'}
        rowClass="approval-row"
        status={(a) => a.status}
        count={false}
        columns={[
          { header: 'Tool', class: 'mono', cell: (a) => a.tool },
          { header: 'Input', class: 'mono details', title: (a) => JSON.stringify(a.input), cell: (a) => summarizeInput(a.input) },
          { header: 'Agent', class: 'mono', cell: (a) => a.agentId },
          { header: 'Session', class: 'mono', cell: (a) => <a href={`#/sessions/${a.sessionId}`}>{a.sessionId}</a> },
          {
            header: 'Status',
            cell: (a) => <Badge kind={a.status} title={[a.decidedBy, a.reason].filter(Boolean).join(': ') || undefined} />,
          },
          { header: 'Requested', class: 'nowrap', cell: (a) => formatTime(a.createdAt) },
          {
            header: status === 'pending' ? 'Expires' : 'Decided',
            class: 'nowrap',
            cell: (a) => formatTime(a.status === 'pending' ? a.expiresAt : a.decidedAt),
          },
          mayDecide && {
            header: '',
            class: 'nowrap',
            cell: (a) =>
              a.status === 'pending' ? (
                <>
                  <button type="button" class="primary" data-testid="approve" onClick={() => void approve(a)} disabled={act.busy}>
                    Approve
                  </button>
                  <button type="button" class="danger" data-testid="deny" onClick={() => void deny(a)} disabled={act.busy}>
                    Deny
                  </button>
                </>
              ) : null,
          },
        ]}
      />
    </Panel>
  );
}
