import { apiError, ConnectionError } from './errors.ts';
import { parseSse } from './sse.ts';
import type { Transport } from './transport.ts';
import type { ExecResult, ExecuteRequest } from './types.ts';

/** A piece of a command's output, as it arrives. */
export interface ExecOutput {
  stream: 'stdout' | 'stderr';
  data: string;
}

export interface ExecOptions {
  /** ms; the command's whole process group is killed when it ends (server default when absent). */
  timeout?: number;
  environment?: Record<string, string>;
  /** Absolute working directory inside the sandbox. */
  workdir?: string;
  /** Text written to the command's standard input, then closed. */
  stdin?: string;
  /** Aborting ends the request; the server then kills the command. */
  signal?: AbortSignal;
  /** Called with every piece of output as it arrives (besides iteration). */
  onOutput?: (out: ExecOutput) => void;
}

/**
 * A command running in a sandbox, its output streamed (the execute endpoint's server-sent
 * events). Iterate it for output as it arrives, and await {@link result} for the exit status and
 * the whole output:
 *
 * ```ts
 * const run = sandbox.exec(['python3', '-c', 'print(6*7)']);
 * for await (const { stream, data } of run) process[stream].write(data);
 * const { exitCode } = await run.result;
 * ```
 *
 * The output is read whether or not anyone iterates (one consumer at a time); the server caps it
 * per stream (`truncated` in the result).
 */
export class Execution implements AsyncIterable<ExecOutput> {
  /** Exit status and the collected output; rejects with the API's error when the command could not run. */
  readonly result: Promise<ExecResult>;
  readonly #abort = new AbortController();
  readonly #queue: ExecOutput[] = [];
  #wake: (() => void) | null = null;
  #done = false;
  #error: Error | null = null;

  constructor(transport: Transport, sandboxId: string, command: ExecuteRequest['command'], opts: ExecOptions = {}) {
    const body: ExecuteRequest = { command };
    if (opts.timeout !== undefined) body.timeout = opts.timeout;
    if (opts.environment) body.environment = opts.environment;
    if (opts.workdir) body.workdir = opts.workdir;
    if (opts.stdin !== undefined) body.stdin = opts.stdin;
    const signal = opts.signal ? AbortSignal.any([opts.signal, this.#abort.signal]) : this.#abort.signal;
    this.result = this.#run(transport, sandboxId, body, signal, opts.onOutput).finally(() => {
      this.#done = true;
      this.#wake?.();
    });
    // Iterating without awaiting `result` must not leave an unhandled rejection behind.
    this.result.catch((err: unknown) => (this.#error = err instanceof Error ? err : new Error(String(err))));
  }

  /** Stops the command (the request is aborted and the server kills the process group). */
  cancel(): void {
    this.#abort.abort();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ExecOutput> {
    for (;;) {
      const next = this.#queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.#done) {
        // Let the result settle first, so a failure is known here.
        await this.result.catch(() => undefined);
        if (this.#error) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }

  async #run(
    transport: Transport,
    id: string,
    body: ExecuteRequest,
    signal: AbortSignal,
    onOutput: ExecOptions['onOutput'],
  ): Promise<ExecResult> {
    const res = await transport.request('POST', `/v1/sandboxes/${encodeURIComponent(id)}/execute`, {
      headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
    const requestId = res.headers.get('x-request-id');
    const out = { stdout: '', stderr: '' };
    if (!res.body) throw new ConnectionError({ code: 'CONNECTION_ERROR', message: 'execute answered without a body', requestId });
    for await (const ev of parseSse(res.body)) {
      const payload = JSON.parse(ev.data) as Record<string, unknown>;
      const text = (key: string, fallback: string) => (typeof payload[key] === 'string' ? payload[key] : fallback);
      if (ev.event === 'stdout' || ev.event === 'stderr') {
        const chunk: ExecOutput = { stream: ev.event, data: text('data', '') };
        out[chunk.stream] += chunk.data;
        this.#queue.push(chunk);
        this.#wake?.();
        onOutput?.(chunk);
      } else if (ev.event === 'exit') {
        const exit = payload as Omit<ExecResult, 'stdout' | 'stderr'>;
        return { ...exit, stdout: out.stdout, stderr: out.stderr };
      } else if (ev.event === 'error') {
        throw apiError({
          code: text('code', 'INTERNAL_ERROR'),
          message: text('message', 'execution failed'),
          status: res.status,
          requestId,
        });
      }
    }
    throw new ConnectionError({ code: 'CONNECTION_ERROR', message: 'the output stream ended before the command exited', requestId });
  }
}
