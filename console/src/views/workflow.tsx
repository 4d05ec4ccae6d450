import { useState } from 'preact/hooks';
import { can } from '../api/session.ts';
import { runIsOpen, type StepAttempt, type Workflow, type WorkflowProgress, type WorkflowRun, type WorkflowStatus } from '../api/types.ts';
import { useAction, useChannel, useLoad, useServices } from '../hooks.ts';
import { Badge, Empty, ErrorNote, KeyValues, Panel } from '../ui/bits.tsx';
import { formatMs, formatTime } from '../ui/format.ts';

/** Output shown per attempt; the API keeps more (DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES). */
const EXCERPT_CHARS = 2000;
const excerpt = (s: string) => (s.length > EXCERPT_CHARS ? `${s.slice(0, EXCERPT_CHARS)}\n…` : s);

/** What a step does, on one line. */
function stepSpec(step: Record<string, unknown> | undefined): string {
  if (!step) return '';
  if (step.type === 'execute')
    return Array.isArray(step.command) ? (step.command as string[]).join(' ') : typeof step.command === 'string' ? step.command : '';
  if (step.type === 'verify') return JSON.stringify(step.criteria);
  if (step.type === 'checkpoint') return typeof step.name === 'string' ? step.name : '';
  return '';
}

/**
 * One workflow and its latest run: every step with every attempt (exit code, duration, output
 * excerpts, verdicts), why the run did not complete, and a cancel button. Live: each
 * `workflow_progress`, `workflow_completed` and `workflow_failed` of this workflow on the hub's
 * `workflows` channel moves the progress bar at once and re-reads the status (the slow poll only
 * covers a hub that is down).
 */
export function WorkflowView(props: { id: string }) {
  const { session } = useServices();
  const wf = useLoad((signal) => session.request<Workflow>('GET', `/v1/workflows/${props.id}`, { signal }), props.id, 60_000);
  const st = useLoad((signal) => session.request<WorkflowStatus>('GET', `/v1/workflows/${props.id}/status`, { signal }), props.id, 30_000);
  const [live, setLive] = useState<WorkflowProgress | null>(null);
  useChannel('workflows', (m) => {
    const d = m.data as { workflowId?: string };
    if (d.workflowId !== props.id) return;
    if (m.type === 'workflow_progress') setLive(m.data as WorkflowProgress);
    st.reload();
  });
  const act = useAction();
  const mayWrite = can(session.me, 'sessions:write');
  const run = st.data?.run ?? null;
  const cancel = () =>
    act.run(async () => {
      if (!confirm(`Cancel the running run of ${props.id}? Its command is killed.`)) return;
      await session.request('POST', `/v1/workflows/${props.id}/cancel`);
      st.reload();
    });
  const w = wf.data;
  return (
    <>
      <Panel
        title={
          <>
            Workflow <span class="mono">{props.id}</span> {st.data ? <Badge kind={st.data.status} /> : null}
          </>
        }
        id="workflow"
        actions={
          mayWrite && run && runIsOpen(run.status) ? (
            <button type="button" class="danger" data-testid="cancel-run" onClick={() => void cancel()} disabled={act.busy}>
              Cancel run
            </button>
          ) : null
        }
      >
        <ErrorNote error={wf.error ?? st.error ?? act.error} />
        {w ? (
          <KeyValues
            rows={[
              ['Name', w.name],
              ['Description', w.description || '–'],
              ['Session', <a href={`#/sessions/${w.sessionId}`}>{w.sessionId}</a>],
              ['Sandbox', w.sandboxId ? <a href={`#/sandboxes/${w.sandboxId}`}>{w.sandboxId}</a> : 'one made for each run'],
              ['Timeout', formatMs(w.config.timeout)],
              ['Retries', String(w.config.maxRetries)],
              ['Created', formatTime(w.createdAt)],
            ]}
          />
        ) : null}
      </Panel>
      {st.data ? <RunPanel run={run} live={live} steps={w?.steps ?? []} totalSteps={st.data.totalSteps} /> : null}
    </>
  );
}

function RunPanel(props: { run: WorkflowRun | null; live: WorkflowProgress | null; steps: Record<string, unknown>[]; totalSteps: number }) {
  const { run } = props;
  if (!run)
    return (
      <Panel title="Latest run" id="run">
        <Empty>Never started.</Empty>
      </Panel>
    );
  // The newest progress message of this run is ahead of (or equal to) the status read it triggered.
  const live = props.live?.runId === run.id && runIsOpen(run.status) ? props.live : null;
  const progress = run.status === 'completed' ? 100 : (live?.progress ?? run.progress);
  const current = live
    ? { step: live.step, type: live.currentStep.type, status: live.currentStep.status }
    : run.currentStep
      ? { step: run.currentStep.step, type: run.currentStep.type, status: run.currentStep.status }
      : null;
  return (
    <Panel
      title={
        <>
          Run {run.number} <span class="mono">{run.id}</span>{' '}
          <span data-testid="run-status" data-status={run.status}>
            <Badge kind={run.status} />
          </span>
        </>
      }
      id="run"
    >
      <div class="progress-line">
        <progress max={100} value={progress} data-testid="run-progress" data-value={String(progress)} />
        <span data-testid="run-current">
          {progress}%
          {current && runIsOpen(run.status) ? ` · step ${current.step} of ${props.totalSteps} (${current.type}) ${current.status}` : ''}
        </span>
      </div>
      {run.reason ? (
        <p class="error" role="alert" data-testid="run-reason">
          <span class="mono">{run.reason.code}</span>: {run.reason.message}
          {run.reason.step ? ` (step ${run.reason.step})` : ''}
          {run.reason.criterion ? ` · criterion ${run.reason.criterion}` : ''}
          {run.reason.saw ? ` · saw ${run.reason.saw}` : ''}
          {run.reason.exitCode !== undefined ? ` · exit code ${run.reason.exitCode}` : ''}
        </p>
      ) : null}
      <KeyValues
        rows={[
          ['Started', formatTime(run.startedAt)],
          ['Ended', formatTime(run.endedAt)],
          ['Duration', formatMs(run.durationMs)],
          ['Retries', `${run.retries} of ${run.maxRetries}`],
          ['Sandbox', run.sandboxId ? <a href={`#/sandboxes/${run.sandboxId}`}>{run.sandboxId}</a> : '–'],
        ]}
      />
      <table class="grid steps">
        <thead>
          <tr>
            <th>Step</th>
            <th>Type</th>
            <th>What</th>
            <th>Status</th>
            <th>Attempts</th>
          </tr>
        </thead>
        <tbody>
          {run.steps.map((s) => (
            <tr key={s.step} class="step-row" data-step={String(s.step)} data-status={s.status}>
              <td class="num">{s.step}</td>
              <td>{s.type}</td>
              <td class="mono">{stepSpec(props.steps[s.step - 1])}</td>
              <td>
                <Badge kind={s.status} />
              </td>
              <td>
                {s.attempts.length === 0 ? (
                  <span class="muted">none yet</span>
                ) : (
                  s.attempts.map((a) => <AttemptView key={a.attempt} a={a} />)
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {run.output ? (
        <>
          <h3>Output</h3>
          <pre class="output">{excerpt(run.output)}</pre>
        </>
      ) : null}
    </Panel>
  );
}

function AttemptView(props: { a: StepAttempt }) {
  const { a } = props;
  return (
    <div class="attempt" data-attempt={String(a.attempt)} data-status={a.status}>
      <div>
        <Badge kind={a.status} /> attempt {a.attempt}
        {a.round ? ` (retry ${a.round})` : ''} · exit code <span class="mono attempt-exit">{a.exitCode ?? '–'}</span>
        {a.timedOut ? ' · timed out' : ''} · {formatMs(a.durationMs)}
        {a.checkpointId ? (
          <>
            {' '}
            · checkpoint <span class="mono">{a.checkpointId}</span>
          </>
        ) : null}
      </div>
      {a.criteria?.length ? (
        <ul class="criteria">
          {a.criteria.map((c, i) => (
            <li key={i}>
              <Badge kind={c.ok ? 'success' : 'failed'}>{c.ok ? 'held' : 'failed'}</Badge> <span class="mono">{c.criterion}</span>
              {c.saw ? <span class="muted"> · saw {c.saw}</span> : null}
            </li>
          ))}
        </ul>
      ) : null}
      {a.error ? <p class="error">{a.error}</p> : null}
      {a.stdout ? <pre class="output attempt-stdout">{excerpt(a.stdout)}</pre> : null}
      {a.stderr ? <pre class="output stderr">{excerpt(a.stderr)}</pre> : null}
      {a.truncated ? <p class="muted">Output was cut by the server's limit.</p> : null}
    </div>
  );
}
