import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api/http.ts';
import { can } from '../api/session.ts';
import type { Sandbox, SandboxMetrics } from '../api/types.ts';
import { useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, ErrorNote, KeyValues, Panel } from '../ui/bits.tsx';
import { formatBytes, formatDuration, formatTime } from '../ui/format.ts';
import { pushSample, type Sample } from '../ui/series.ts';
import { Spark } from '../ui/spark.tsx';
import { TerminalPanel } from './terminal.tsx';

/** Samples kept per series: 5 minutes at one every 2 s. */
const MAX_SAMPLES = 150;
const METRICS_EVERY_MS = 2000;
/** A stats call the engine has not answered by then is given up and tried again. */
const METRICS_TIMEOUT_MS = 15_000;

interface Series {
  cpu: Sample[];
  memory: Sample[];
  pids: Sample[];
  rx: Sample[];
  tx: Sample[];
}
const NO_SERIES: Series = { cpu: [], memory: [], pids: [], rx: [], tx: [] };

/** One sandbox: status, limits and policy, resource use over time, and a terminal. */
export function SandboxView(props: { id: string }) {
  const { session } = useServices();
  const sb = useLoad((signal) => session.request<Sandbox>('GET', `/v1/sandboxes/${props.id}`, { signal }), props.id, 10_000);
  useChannel('sandboxes', (m) => {
    if ((m.data as { sandboxId?: string }).sandboxId === props.id) sb.reload();
  });
  const s = sb.data;
  return (
    <>
      <Panel
        title={
          <>
            Sandbox <span class="mono">{props.id}</span> {s ? <Badge kind={s.status} title={s.reason ?? undefined} /> : null}
          </>
        }
        id="sandbox"
        actions={<a href={`#/events?sandbox=${props.id}`}>Security events</a>}
      >
        <ErrorNote error={sb.error} />
        {s ? (
          <div class="columns">
            <KeyValues
              rows={[
                ['Name', s.name],
                ['Image', <span class="mono">{s.image}</span>],
                ['Network', s.networkId ? <a href={`#/networks/${s.networkId}`}>{s.networkId}</a> : s.networkMode],
                ['Address', s.ipAddress ?? '–'],
                ['Created', formatTime(s.createdAt)],
                ['Expires', formatTime(s.expiresAt)],
                ['Reason', s.reason ?? '–'],
                ['Environment', s.environmentKeys.length ? s.environmentKeys.join(', ') : '–'],
              ]}
            />
            <KeyValues
              rows={[
                ['CPU', `${s.resourceLimits.cpu} ${s.resourceLimits.cpu === 1 ? 'core' : 'cores'}`],
                ['Memory', `${s.resourceLimits.memory} MiB (no swap)`],
                ['Disk', `${s.resourceLimits.disk} MiB`],
                ['Processes', String(s.resourceLimits.pids)],
                ['Wall time', formatDuration(s.resourceLimits.maxDuration)],
                ['Network access', s.resourceLimits.network ? 'yes' : 'no'],
                [
                  'Security policy',
                  <span class="mono">
                    {Object.entries(s.securityPolicy)
                      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
                      .join(' ')}
                  </span>,
                ],
              ]}
            />
          </div>
        ) : null}
      </Panel>
      {s?.status === 'running' ? <MetricsPanel id={props.id} /> : null}
      {s?.status === 'running' && can(session.me, 'sandboxes:exec') ? <TerminalPanel sandboxId={props.id} /> : null}
    </>
  );
}

/** Polls `GET /v1/sandboxes/{id}/metrics` and keeps the last few minutes in memory. */
function MetricsPanel(props: { id: string }) {
  const { session } = useServices();
  const [series, setSeries] = useState<Series>(NO_SERIES);
  const [last, setLast] = useState<SandboxMetrics | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    setSeries(NO_SERIES);
    const poll = async () => {
      try {
        const m = await session.request<SandboxMetrics>('GET', `/v1/sandboxes/${props.id}/metrics`, {
          signal: AbortSignal.timeout(METRICS_TIMEOUT_MS),
        });
        if (stopped) return;
        const at = Date.parse(m.timestamp) || Date.now();
        setLast(m);
        setError(null);
        setSeries((p) => ({
          cpu: pushSample(p.cpu, { atMs: at, value: m.cpu.percent }, MAX_SAMPLES),
          memory: pushSample(p.memory, { atMs: at, value: m.memory.usageBytes }, MAX_SAMPLES),
          pids: pushSample(p.pids, { atMs: at, value: m.pids.current }, MAX_SAMPLES),
          rx: pushSample(p.rx, { atMs: at, value: m.network.rxBytes }, MAX_SAMPLES),
          tx: pushSample(p.tx, { atMs: at, value: m.network.txBytes }, MAX_SAMPLES),
        }));
      } catch (err) {
        if (stopped) return;
        const e = err as Error;
        setError(
          err instanceof ApiError && err.code === 'CONFLICT'
            ? 'the sandbox is not running'
            : e.name === 'TimeoutError'
              ? `no answer from the engine in ${METRICS_TIMEOUT_MS / 1000} s; trying again`
              : e.message,
        );
      }
      if (!stopped) timer = setTimeout(() => void poll(), METRICS_EVERY_MS);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [props.id, session]);
  return (
    <Panel title="Resource use" id="metrics">
      <ErrorNote error={error} />
      <div class="sparks">
        <Spark
          id="spark-cpu"
          label="CPU %"
          series={series.cpu}
          format={(v) => `${v.toFixed(1)} %`}
          ceiling={(last?.cpu.limitCores ?? 1) * 100}
        />
        <Spark
          id="spark-memory"
          label={`Memory (limit ${formatBytes(last?.memory.limitBytes)})`}
          series={series.memory}
          format={formatBytes}
          ceiling={last?.memory.limitBytes ?? 0}
        />
        <Spark id="spark-pids" label={`Processes (limit ${last?.pids.limit ?? '–'})`} series={series.pids} format={(v) => String(v)} />
        <Spark id="spark-rx" label="Network in (total)" series={series.rx} format={formatBytes} />
        <Spark id="spark-tx" label="Network out (total)" series={series.tx} format={formatBytes} />
      </div>
      <p class="muted">
        Sampled every {METRICS_EVERY_MS / 1000} s while this page is open · up {formatDuration(last?.uptimeMs)}
      </p>
    </Panel>
  );
}
