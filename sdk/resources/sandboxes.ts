import { Execution, type ExecOptions } from '../exec.ts';
import { Terminal, type TerminalOptions } from '../terminal.ts';
import { unwrap, type Transport } from '../transport.ts';
import type {
  CreateSandboxRequest,
  ExecResult,
  ExecuteRequest,
  FileWritten,
  ListSandboxesQuery,
  Page,
  SandboxInfo,
  SandboxMetrics,
} from '../types.ts';

import { allPages, callOptions, idPath, type CreateOptions, type RequestOptions } from './request.ts';

/** Files in and out of a running sandbox (`/v1/sandboxes/{id}/files`). */
export class SandboxFiles {
  readonly #t: Transport;
  readonly #id: string;

  constructor(t: Transport, id: string) {
    this.#t = t;
    this.#id = id;
  }

  /** Writes one file (its parent directory must exist and be writable by the sandbox user). */
  async write(path: string, content: Uint8Array | string, opts: RequestOptions = {}): Promise<FileWritten> {
    const body = typeof content === 'string' ? new TextEncoder().encode(content) : content;
    return this.#put(path, 'file', 'application/octet-stream', body, opts);
  }

  /** Extracts a tar archive into the directory `path` (which must exist). */
  async uploadTar(path: string, tar: Uint8Array, opts: RequestOptions = {}): Promise<FileWritten> {
    return this.#put(path, 'tar', 'application/x-tar', tar, opts);
  }

  /** Reads one regular file (a directory, link or device is refused). */
  async read(path: string, opts: RequestOptions = {}): Promise<Uint8Array> {
    const res = await this.#get(path, 'file', opts);
    return new Uint8Array(await res.arrayBuffer());
  }

  async readText(path: string, opts: RequestOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, opts));
  }

  /**
   * A tar archive of `path` and everything under it, entries named from `path`'s last component.
   * The server refuses links, devices and escaping names before anything is sent.
   */
  async downloadTar(path: string, opts: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#get(path, 'tar', opts);
    if (!res.body) throw new Error('the download answered without a body');
    return res.body;
  }

  async #put(path: string, format: 'file' | 'tar', type: string, body: Uint8Array, opts: RequestOptions): Promise<FileWritten> {
    const res = await this.#t.request('PUT', `/v1/sandboxes/${encodeURIComponent(this.#id)}/files`, {
      query: { path, format },
      headers: { 'content-type': type },
      body: body as Uint8Array<ArrayBuffer>,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return ((await res.json()) as { data: FileWritten }).data;
  }

  #get(path: string, format: 'file' | 'tar', opts: RequestOptions): Promise<Response> {
    return this.#t.request('GET', `/v1/sandboxes/${encodeURIComponent(this.#id)}/files`, {
      query: { path, format },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }
}

/** Operations on a sandbox known by id (nothing is fetched until asked). */
export class SandboxRef {
  readonly id: string;
  readonly files: SandboxFiles;
  protected readonly t: Transport;

  constructor(t: Transport, id: string) {
    this.t = t;
    this.id = id;
    this.files = new SandboxFiles(t, id);
  }

  /**
   * Runs a command, its output streamed as it is produced (see {@link Execution}). `command` is
   * argv (run without a shell) or a string (run with `/bin/sh -c`).
   */
  exec(command: ExecuteRequest['command'], opts: ExecOptions = {}): Execution {
    return new Execution(this.t, this.id, command, opts);
  }

  /** Runs a command and answers once it ended, with its whole output (no streaming). */
  async run(command: ExecuteRequest['command'], opts: Omit<ExecOptions, 'onOutput'> = {}): Promise<ExecResult> {
    const { signal, ...rest } = opts;
    return unwrap(
      await this.t.api.POST('/v1/sandboxes/{id}/execute', {
        ...idPath(this.id),
        body: { command, ...rest },
        ...(signal ? { signal } : {}),
      }),
    );
  }

  /** An interactive shell (see {@link Terminal}). */
  async terminal(opts: TerminalOptions = {}): Promise<Terminal> {
    return Terminal.open(this.t, this.id, opts);
  }

  /** The current state. */
  async get(): Promise<Sandbox> {
    return new Sandbox(this.t, unwrap(await this.t.api.GET('/v1/sandboxes/{id}', idPath(this.id))));
  }

  /** Resource usage from engine stats. */
  async metrics(): Promise<SandboxMetrics> {
    return unwrap(await this.t.api.GET('/v1/sandboxes/{id}/metrics', idPath(this.id)));
  }

  /** The network policy in force for this sandbox, read back from the kernel. */
  async networkPolicy(): Promise<Record<string, unknown>> {
    return unwrap(await this.t.api.GET('/v1/sandboxes/{id}/network-policy', idPath(this.id)));
  }

  /** Stops it (SIGTERM, then SIGKILL after a grace period). */
  async stop(): Promise<Sandbox> {
    return new Sandbox(this.t, unwrap(await this.t.api.POST('/v1/sandboxes/{id}/stop', idPath(this.id))));
  }

  /** Deletes it (container and private network removed). */
  async delete(): Promise<void> {
    unwrap(await this.t.api.DELETE('/v1/sandboxes/{id}', idPath(this.id)));
  }

  /** `await using sandbox = await client.sandboxes.create(...)` deletes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.delete().catch((err: unknown) => {
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
    });
  }
}

/** A sandbox with its state as of the last answer ({@link info}). */
export class Sandbox extends SandboxRef {
  readonly info: SandboxInfo;

  constructor(t: Transport, info: SandboxInfo) {
    super(t, info.id);
    this.info = info;
  }

  get status(): SandboxInfo['status'] {
    return this.info.status;
  }

  toJSON(): SandboxInfo {
    return this.info;
  }
}

/** `client.sandboxes`: the Sandbox API. */
export class Sandboxes {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** Creates and starts a sandbox; it is running when this resolves. */
  async create(request: CreateSandboxRequest = {}, opts: CreateOptions = {}): Promise<Sandbox> {
    const res = await this.#t.api.POST('/v1/sandboxes', { body: request, ...callOptions(opts) });
    return new Sandbox(this.#t, unwrap(res));
  }

  async get(id: string): Promise<Sandbox> {
    return this.ref(id).get();
  }

  /** A handle on a sandbox by id, without a request. */
  ref(id: string): SandboxRef {
    return new SandboxRef(this.#t, id);
  }

  /** One page of the caller's sandboxes (newest first). */
  async list(query: ListSandboxesQuery = {}): Promise<Page<SandboxInfo>> {
    return unwrap(await this.#t.api.GET('/v1/sandboxes', { params: { query } }));
  }

  /** Every sandbox matching `query`, page after page. */
  all(query: Omit<ListSandboxesQuery, 'offset'> = {}): AsyncGenerator<SandboxInfo> {
    return allPages((q) => this.list(q), query);
  }
}
