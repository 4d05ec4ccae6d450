/**
 * How `workflow run` shows a run as its events arrive: one plain line per step that ended (and
 * per retry, rollback and the run's end), and, on a terminal only, a live line under them for the
 * step running now (spinner, step n/total, percent, elapsed time), redrawn in place. In a pipe
 * only the plain lines are written, so logs stay readable.
 */
import type { WorkflowEvent, WorkflowFailure } from '../sdk/index.ts';
import { duration } from './output.ts';
import type { ProgressTarget } from './progress.ts';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 100;

/** `verify_failed: step 2: "exit code 0" saw exit code 1 (…message)`: the reason in one line. */
export function describeFailure(reason: WorkflowFailure | null | undefined): string {
  if (!reason) return 'no reason given';
  const where = reason.step !== undefined ? ` at step ${reason.step}` : '';
  const criterion = reason.criterion !== undefined ? ` (criterion ${JSON.stringify(reason.criterion)}` : '';
  const saw = reason.saw !== undefined ? `${criterion ? ', ' : ' ('}saw ${JSON.stringify(reason.saw)}` : '';
  const close = criterion || saw ? ')' : '';
  return `${reason.code}${where}: ${reason.message}${criterion}${saw}${close}`.replace(/\s*\n\s*/g, ' ');
}

export class RunProgress {
  readonly #out: ProgressTarget;
  readonly #live: boolean;
  readonly #nowMs: () => number;
  #timer: ReturnType<typeof setInterval> | null = null;
  #frame = 0;
  #current: { step: number; total: number; type: string; progress: number; startMs: number; attempt: number } | null = null;

  constructor(out: ProgressTarget, nowMs: () => number = Date.now) {
    this.#out = out;
    this.#live = out.isTTY === true;
    this.#nowMs = nowMs;
  }

  /** Shows one event of the run. */
  event(e: WorkflowEvent): void {
    if (e.type === 'step') {
      const d = e.data;
      const tag = `step ${d.step}/${d.totalSteps} ${d.currentStep.type}`;
      if (d.currentStep.status === 'running') {
        this.#current = {
          step: d.step,
          total: d.totalSteps,
          type: d.currentStep.type,
          progress: d.progress,
          startMs: Date.parse(d.currentStep.startTime) || this.#nowMs(),
          attempt: d.round,
        };
        this.#draw();
        return;
      }
      const facts = [
        d.exitCode !== undefined ? `exit ${d.exitCode}` : null,
        d.timedOut ? 'timed out' : null,
        d.durationMs !== undefined ? duration(d.durationMs) : null,
        d.round > 0 ? `retry ${d.round}` : null,
      ].filter(Boolean);
      this.#current = null;
      this.#line(`${tag} ${d.currentStep.status}${facts.length ? ` (${facts.join(', ')})` : ''}`);
      return;
    }
    if (e.type === 'retry') {
      const d = e.data as { round?: number; maxRetries?: number; delayMs?: number; resumeStep?: number };
      this.#line(`retry ${d.round}/${d.maxRetries} in ${duration(d.delayMs ?? 0)}, from step ${d.resumeStep}`);
      return;
    }
    if (e.type === 'rollback') {
      const d = e.data as { checkpointId?: string; status?: string; error?: string };
      if (d.status !== 'running') this.#line(`rollback to ${d.checkpointId} ${d.status}${d.error ? `: ${d.error}` : ''}`);
      return;
    }
    if (e.type === 'run' && e.data.status === 'queued') this.#line('run queued (the department or the instance runs its maximum)');
  }

  /** Clears the live line and stops redrawing. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#live) this.#out.write('\r\x1b[K');
  }

  #line(text: string): void {
    if (this.#live) this.#out.write(`\r\x1b[K${text}\n`);
    else this.#out.write(`${text}\n`);
    this.#draw();
  }

  #draw(): void {
    if (!this.#live) return;
    if (!this.#current) {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = null;
      return;
    }
    this.#render();
    this.#timer ??= setInterval(() => this.#render(), FRAME_MS);
  }

  #render(): void {
    const c = this.#current;
    if (!c) return;
    const frame = FRAMES[this.#frame++ % FRAMES.length]!;
    const retry = c.attempt > 0 ? `, retry ${c.attempt}` : '';
    this.#out.write(
      `\r\x1b[K${frame} step ${c.step}/${c.total} ${c.type} running ${c.progress}% ${duration(this.#nowMs() - c.startMs)}${retry}`,
    );
  }
}
