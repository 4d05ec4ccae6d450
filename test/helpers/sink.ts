import type { EventSink } from '../../runtime/events.ts';

/**
 * The sink with an `emit` that stores at once (emit, then flush), for tests that look at what
 * was stored right after emitting, in the same synchronous run.
 */
export function storing(sink: EventSink): EventSink {
  return {
    ...sink,
    emit(input) {
      const e = sink.emit(input);
      sink.flush();
      return e;
    },
  };
}
