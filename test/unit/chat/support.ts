/**
 * The chat area assembled over an in-memory store, a scripted fake LLM provider on loopback and
 * a fake sandbox (no engine): for testing turns, approvals and streams without Docker. What
 * runs in a real sandbox is tested in test/integration/chat/.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { openDb } from '../../../core/db.ts';
import { loadConfig, type Config } from '../../../runtime/config.ts';
import { createEventSink, type EventSink } from '../../../runtime/events.ts';
import type { SandboxRecord } from '../../../runtime/store/sandboxes.ts';
import { createChat, type Chat } from '../../../orchestration/chat/chat.ts';
import type { ChatEvent } from '../../../orchestration/chat/events.ts';
import type { SandboxIo } from '../../../orchestration/chat/tools.ts';
import { DepartmentService } from '../../../orchestration/departments/service.ts';
import { DepartmentStore } from '../../../orchestration/departments/store.ts';
import type { SessionSandboxes } from '../../../orchestration/sandboxes.ts';
import { SessionService } from '../../../orchestration/sessions/service.ts';
import { SessionStore } from '../../../orchestration/sessions/store.ts';
import { SecretBox } from '../../../core/secrets.ts';
import { TaskTracker } from '../../../orchestration/tasks.ts';
import { startFakeLlm, type FakeLlm, type FakeLlmKind } from '../../helpers/fake-llm.ts';
import { storing } from '../../helpers/sink.ts';

export const caller = { workspace: 'wsp_t', actor: 'usr_alice' };

export interface Harness extends AsyncDisposable {
  chat: Chat;
  llm: FakeLlm;
  events: EventSink;
  sessions: SessionService;
  /** Commands the fake sandbox ran, in order. */
  ran: { command: string | string[]; env: Record<string, string> }[];
  /** Files the fake sandbox holds. */
  files: Map<string, string>;
  /** What `execute` answers: a function of the command (default: exit 0, stdout `ran: <command>`). */
  answer: (command: string) => { exitCode: number; stdout: string; stderr?: string; delayMs?: number };
  /** A session, department and agent; returns the agent. */
  agent(body?: Record<string, unknown>): Promise<{ sessionId: string; agentId: string; departmentId: string }>;
  /** Events of a turn until it ends. */
  turnEvents(turnId: string, sessionId: string, fromSeq: number): Promise<ChatEvent[]>;
  close(): Promise<void>;
}

export async function harness(kind: FakeLlmKind = 'openai', overrides: Partial<Config> = {}): Promise<Harness> {
  const llm = await startFakeLlm(kind);
  const db = openDb('/tmp/x', ':memory:');
  const clock = { nowMs: () => Date.now() };
  const events = storing(createEventSink(db, clock));
  const config = loadConfig(
    {},
    {
      llmProvider: kind === 'openai' ? 'openai-compatible' : 'anthropic',
      llmBaseUrl: llm.baseUrl,
      llmApiKey: 'provider-key-for-tests',
      llmModel: 'fake-model',
      llmMaxRetries: 0,
      logLevel: 'silent',
      ...overrides,
    },
  );
  const logger = pino({ level: 'silent' });
  const sessionStore = new SessionStore(db);
  const departmentStore = new DepartmentStore(db);
  const tasks = new TaskTracker(sessionStore);
  const sessions = new SessionService({
    store: sessionStore,
    events,
    clock,
    config,
    logger,
    countDepartments: (id) => departmentStore.countOf(id),
    countTasks: (id) => tasks.of(id).total,
  });
  const departments = new DepartmentService({
    store: departmentStore,
    sessions,
    tasks,
    events,
    clock,
    config,
    usage: async () => ({ sandboxesRunning: 0, sandboxesTotal: 0, cpuPercent: 0, memoryBytes: 0 }),
  });
  const boxes: SandboxRecord[] = [];
  const sandboxes = {
    ofSession: (id: string) => boxes.filter((b) => b.owner.sessionId === id),
    create: async (_caller: unknown, raw: { sessionId: string; labels: Record<string, string> }) => {
      const rec = {
        id: `sbx_fake${boxes.length.toString().padStart(12, '0')}`,
        status: 'running',
        labels: raw.labels,
        owner: { sessionId: raw.sessionId },
      };
      boxes.push(rec as unknown as SandboxRecord);
      return rec as unknown as SandboxRecord;
    },
  } as unknown as SessionSandboxes;
  const ran: Harness['ran'] = [];
  const files = new Map<string, string>();
  const h = {
    answer: (command: string) => ({ exitCode: 0, stdout: `ran: ${command}\n` }),
  } as Pick<Harness, 'answer'>;
  const io: SandboxIo = {
    async execute(_c, _id, req, signal) {
      ran.push({ command: req.command, env: req.environment ?? {} });
      if (Array.isArray(req.command)) return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, timedOut: false, truncated: false };
      const a = h.answer(req.command);
      if (a.delayMs) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, a.delayMs);
          signal?.addEventListener('abort', () => {
            clearTimeout(t);
            reject(new Error('killed'));
          });
        });
      }
      return { exitCode: a.exitCode, stdout: a.stdout, stderr: a.stderr ?? '', durationMs: 1, timedOut: false, truncated: false };
    },
    async readFile(_c, _id, p) {
      const v = files.get(p);
      if (v === undefined) throw new Error(`cannot read ${p} in the sandbox: No such file or directory`);
      return Buffer.from(v);
    },
    async writeFile(_c, _id, p, content: Readable) {
      const parts: Buffer[] = [];
      for await (const c of content) parts.push(c as Buffer);
      files.set(p, Buffer.concat(parts).toString());
      return { bytes: Buffer.concat(parts).length };
    },
  };
  const chat = createChat({
    db,
    config,
    clock,
    logger,
    events,
    secrets: new SecretBox(randomBytes(32)),
    sessions,
    sessionById: (id) => sessionStore.byId(id),
    departments,
    sandboxes,
    tasks,
    io,
  });
  sessions.onEnd({ name: 'chat', phase: 0, end: (s, to) => chat.service.endSessionWork(s, to) });
  chat.service.start();
  const close = async () => {
    await chat.service.close();
    sessions.close();
    await llm.close();
    db.close();
  };
  return Object.assign(h, {
    chat,
    llm,
    events,
    sessions,
    ran,
    files,
    async agent(body: Record<string, unknown> = {}) {
      const s = sessions.create(caller, { name: 'chat' });
      const d = departments.create(caller, { sessionId: s.id, name: 'eng', domain: 'code' });
      const a = chat.agents.create(caller, { departmentId: d.id, name: 'coder', ...body });
      return { sessionId: s.id, agentId: a.id, departmentId: d.id };
    },
    async turnEvents(turnId: string, sessionId: string, fromSeq: number) {
      const out: ChatEvent[] = [];
      for await (const e of chat.service.follow(caller, sessionId, fromSeq, { turnId })) out.push(e);
      return out;
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}

/** A turn's events as `type` or `type:detail` strings, consecutive deltas (`content`, `thinking`) collapsed. */
export function shape(events: ChatEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const s = e.type === 'tool_end' ? `tool_end:${String(e.data.status)}` : e.type;
    if ((s === 'content' || s === 'thinking') && out.at(-1) === s) continue;
    out.push(s);
  }
  return out;
}
