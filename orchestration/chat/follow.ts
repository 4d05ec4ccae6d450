import { isTerminal, type ChatEvent, type ChatEventLog } from './events.ts';

const PAGE = 500;

/**
 * A session's chat events after `after`: first what the stream kept, then live ones, until the
 * turn `target` ends (its `done` or `error`); with no target, only what was kept. Listening
 * starts before the replay is read, so an event appended in between is in one or the other, and
 * duplicates are dropped by seq. With `turnId`, only that turn's events are given.
 */
export async function* followSession(
  log: ChatEventLog,
  sessionId: string,
  after: number,
  target: string | null,
  opts: { turnId?: string; signal?: AbortSignal } = {},
): AsyncGenerator<ChatEvent> {
  const queue: ChatEvent[] = [];
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const unsubscribe = log.subscribe((e) => {
    if (e.sessionId !== sessionId) return;
    queue.push(e);
    poke();
  });
  opts.signal?.addEventListener('abort', poke, { once: true });
  const wanted = (e: ChatEvent) => !opts.turnId || e.turnId === opts.turnId;
  const ends = (e: ChatEvent) => target !== null && e.turnId === target && isTerminal(e);
  try {
    let last = after;
    for (;;) {
      const page = log.after(sessionId, last, PAGE);
      for (const e of page) {
        last = e.seq;
        if (!wanted(e)) continue;
        yield e;
        if (ends(e)) return;
      }
      if (page.length < PAGE) break;
    }
    if (target === null) return;
    for (;;) {
      while (queue.length) {
        const e = queue.shift()!;
        if (e.seq <= last) continue;
        last = e.seq;
        if (!wanted(e)) continue;
        yield e;
        if (ends(e)) return;
      }
      if (opts.signal?.aborted) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    unsubscribe();
    opts.signal?.removeEventListener('abort', poke);
  }
}
