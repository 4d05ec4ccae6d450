import { useMemo, useRef, useState } from 'preact/hooks';
import type { ChannelMessage } from '../api/hub.ts';
import { SEVERITIES, type SecurityEvent, type Severity } from '../api/types.ts';
import { useAction, useChannel, useServices, type Route } from '../hooks.ts';
import { Badge, Empty, ErrorNote, Panel } from '../ui/bits.tsx';
import { formatTime, summarizeDetails } from '../ui/format.ts';
import { filterQuery, matches, mergeEvents, NO_FILTER, type EventFilter } from './event-filter.ts';

/** Events kept in the page at most (newest first). */
const MAX_EVENTS = 1000;
/** How far back the view reads stored events when it opens (positions in the event stream). */
const HISTORY = 500;

/**
 * Live security events: history from `GET /v1/security/events`, then every new event from the
 * hub's `security` channel as it happens. Filters apply to both and to the export; pausing
 * holds new events back (counted) until resumed.
 */
export function EventsView(props: { route: Route }) {
  const { session } = useServices();
  const q = props.route.query;
  const [filter, setFilter] = useState<EventFilter>({
    ...NO_FILTER,
    ...(q.get('sandbox') ? { sandboxId: q.get('sandbox')! } : {}),
    ...(q.get('network') ? { networkId: q.get('network')! } : {}),
    ...(q.get('type') ? { type: q.get('type')! } : {}),
  });
  const [events, setEvents] = useState<SecurityEvent[]>([]);
  const [paused, setPaused] = useState(false);
  const held = useRef<SecurityEvent[]>([]);
  const [heldCount, setHeldCount] = useState(0);
  const [historyError, setHistoryError] = useState<string | null>(null);
  const loadedHistory = useRef(false);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const exporting = useAction();

  useChannel(
    'security',
    (m: ChannelMessage) => {
      if (m.type !== 'security_event') return;
      const e = m.data as SecurityEvent;
      if (pausedRef.current) {
        held.current.push(e);
        setHeldCount(held.current.length);
      } else setEvents((list) => mergeEvents(list, [e], MAX_EVENTS));
    },
    (cursor, resumed) => {
      if (resumed || loadedHistory.current) return;
      loadedHistory.current = true;
      // The stored events just before the live stream starts; the seq dedupes any overlap.
      const after = Math.max(0, cursor - HISTORY);
      session
        .request<{ items: SecurityEvent[] }>('GET', `/v1/security/events?after=${after}&limit=${HISTORY}`)
        .then((page) => setEvents((list) => mergeEvents(list, page.items, MAX_EVENTS)))
        .catch((err: unknown) => setHistoryError(`history: ${err instanceof Error ? err.message : String(err)}`));
    },
  );

  const shown = useMemo(() => events.filter((e) => matches(e, filter)), [events, filter]);
  const types = useMemo(() => [...new Set(events.map((e) => e.type))].sort(), [events]);

  const resume = () => {
    setEvents((list) => mergeEvents(list, held.current, MAX_EVENTS));
    held.current = [];
    setHeldCount(0);
    setPaused(false);
  };

  const exportNdjson = () =>
    exporting.run(async () => {
      // Fetched with the bearer token and handed to the browser as a Blob: the token never goes in a link.
      const res = await session.fetch('GET', `/v1/security/events/export?${filterQuery(filter).toString()}`, {
        headers: { accept: 'application/x-ndjson' },
      });
      if (!res.ok) throw new Error(`export failed: ${res.status}`);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `director-events-${new Date().toISOString().replace(/[:.]/g, '-')}.ndjson`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });

  const set = (patch: Partial<EventFilter>) => setFilter((f) => ({ ...f, ...patch }));
  const input = (e: Event) => (e.currentTarget as HTMLInputElement).value;

  return (
    <Panel
      title="Security events"
      id="events"
      actions={
        <>
          {paused ? (
            <button type="button" onClick={resume} class="primary" data-testid="resume">
              Resume{heldCount ? ` (${heldCount} new)` : ''}
            </button>
          ) : (
            <button type="button" onClick={() => setPaused(true)} data-testid="pause">
              Pause
            </button>
          )}
          <button type="button" onClick={() => void exportNdjson()} disabled={exporting.busy} title="NDJSON with OCSF mapping, filtered">
            Export
          </button>
        </>
      }
    >
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Severity at least
          <select value={filter.minSeverity} onChange={(e) => set({ minSeverity: input(e) as Severity })} name="minSeverity">
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type
          <input list="event-types" value={filter.type} onInput={(e) => set({ type: input(e) })} name="type" placeholder="any" />
          <datalist id="event-types">
            {types.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </label>
        <label>
          Sandbox
          <input value={filter.sandboxId} onInput={(e) => set({ sandboxId: input(e) })} name="sandboxId" placeholder="sbx_…" />
        </label>
        <label>
          Network
          <input value={filter.networkId} onInput={(e) => set({ networkId: input(e) })} name="networkId" placeholder="net_…" />
        </label>
        <button type="button" onClick={() => setFilter(NO_FILTER)}>
          Clear
        </button>
      </form>
      <ErrorNote error={historyError ?? exporting.error} />
      <p class="muted" data-testid="event-count">
        {shown.length} of {events.length} events{paused ? ' · paused' : ' · live'}
      </p>
      {shown.length === 0 ? (
        <Empty>No events match yet. New ones appear here as they happen.</Empty>
      ) : (
        <table class="grid events">
          <thead>
            <tr>
              <th>Time</th>
              <th>Severity</th>
              <th>Type</th>
              <th>Sandbox</th>
              <th>Network</th>
              <th>Actor</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => (
              <tr key={e.seq} class="event-row" data-seq={e.seq} data-type={e.type}>
                <td class="nowrap">{formatTime(e.timestamp)}</td>
                <td>
                  <Badge kind={e.severity} />
                </td>
                <td class="mono">{e.type}</td>
                <td class="mono">{e.sandboxId ? <a href={`#/sandboxes/${e.sandboxId}`}>{e.sandboxId}</a> : '–'}</td>
                <td class="mono">{e.networkId ? <a href={`#/networks/${e.networkId}`}>{e.networkId}</a> : '–'}</td>
                <td class="mono">{e.actor ?? '–'}</td>
                <td class="details" title={JSON.stringify(e.details)}>
                  {summarizeDetails(e.details)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Panel>
  );
}
