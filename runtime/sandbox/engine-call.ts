import { DirectorError, unavailable } from '../../core/errors.ts';
import { EngineConflictError, EngineNotFoundError, EngineUnavailableError } from '../engine/engine.ts';

/**
 * The Director error an engine failure is answered with, or null for any other error: an
 * unreachable engine is the 503 `SERVICE_UNAVAILABLE`, a container gone the 404 `NOT_FOUND`, a
 * container whose state refuses the call (not running, paused, being removed) the 409 `CONFLICT`.
 * The engine's own message stays in `cause` (logs), never in the answer.
 */
export function engineError(err: unknown): DirectorError | null {
  if (err instanceof EngineUnavailableError) return unavailable('the container engine is unavailable', err);
  const answer = ENGINE_ANSWERS.find(([kind]) => err instanceof kind);
  return answer ? new DirectorError(answer[1], answer[2], { resource: 'container' }, { cause: err }) : null;
}

/** The engine's refusals of a call on an existing engine, and what a client is told of each. */
const ENGINE_ANSWERS = [
  [EngineNotFoundError, 'NOT_FOUND', "the sandbox's container no longer exists in the engine"],
  [EngineConflictError, 'CONFLICT', "the sandbox's container is not in a state that allows this (not running?)"],
] as const;

/** Runs an engine call; an engine failure becomes the Director error every caller answers with ({@link engineError}). */
export async function engineCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw engineError(err) ?? err;
  }
}
