import { useState } from 'preact/hooks';
import type { Alert } from '../api/types.ts';
import { useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime } from '../ui/format.ts';

interface ActiveAlert {
  id: string;
  rule: string;
  severity: string;
  message: string;
  workspace: string | null;
  sandboxId: string | null;
  count: number;
  threshold: number;
  windowMs: number;
  firedAt: string;
  lastEventAt: string;
}

/** Alert rules whose condition holds now (`GET /v1/security/alerts`), and alerts raised while the page is open. */
export function AlertsView() {
  const { session } = useServices();
  const active = useLoad((signal) => session.request<{ items: ActiveAlert[] }>('GET', '/v1/security/alerts', { signal }), 'alerts', 10_000);
  const [raised, setRaised] = useState<Alert[]>([]);
  useChannel('security', (m) => {
    if (m.type !== 'security_alert') return;
    setRaised((list) => [(m.data as { alert: Alert }).alert, ...list].slice(0, 200));
    active.reload();
  });
  return (
    <>
      <Panel title="Active alerts" id="alerts">
        <ErrorNote error={active.error} />
        {active.data && active.data.items.length === 0 ? <Empty>No alert condition holds now.</Empty> : null}
        {active.data && active.data.items.length > 0 ? (
          <table class="grid">
            <thead>
              <tr>
                <th>Rule</th>
                <th>Severity</th>
                <th>Message</th>
                <th>Sandbox</th>
                <th>Events in window</th>
                <th>Fired</th>
                <th>Last event</th>
              </tr>
            </thead>
            <tbody>
              {active.data.items.map((a) => (
                <tr key={a.id}>
                  <td class="mono">{a.rule}</td>
                  <td>
                    <Badge kind={a.severity} />
                  </td>
                  <td>{a.message}</td>
                  <td class="mono">{a.sandboxId ? <a href={`#/sandboxes/${a.sandboxId}`}>{a.sandboxId}</a> : '–'}</td>
                  <td class="num">
                    {a.count} / {a.threshold}
                  </td>
                  <td class="nowrap">{formatTime(a.firedAt)}</td>
                  <td class="nowrap">{formatTime(a.lastEventAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Panel>
      <Panel title="Raised while this page is open" id="alerts-live">
        {raised.length === 0 ? (
          <Empty>None yet.</Empty>
        ) : (
          <ul class="alerts">
            {raised.map((a, i) => (
              <li key={i}>
                <Badge kind={a.severity} /> <span class="mono">{a.rule}</span> {a.message}{' '}
                <span class="muted">{formatTime(a.timestamp)}</span>
              </li>
            ))}
          </ul>
        )}
      </Panel>
    </>
  );
}
