import { unavailable } from '../../core/errors.ts';
import { EngineUnavailableError } from '../engine/engine.ts';

/** Runs an engine call; an unreachable engine becomes the 503 `SERVICE_UNAVAILABLE` every caller answers with. */
export async function engineCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof EngineUnavailableError) throw unavailable('the container engine is unavailable', err);
    throw err;
  }
}
