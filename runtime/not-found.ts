import { notFound, type DirectorError } from '../core/errors.ts';
import type { EventSink } from './events.ts';
import type { Caller } from './sandbox/caller.ts';

/**
 * The 404 for a record the caller's workspace does not have. It says nothing of whether the id
 * exists elsewhere; when it does (`owner` is another workspace), the attempt is recorded as a
 * `cross_workspace_attempt` security event for the caller's workspace.
 */
export function notFoundFor(
  events: EventSink,
  caller: Caller,
  resource: string,
  id: string,
  owner: string | null | undefined,
): DirectorError {
  if (owner != null && owner !== caller.workspace) {
    events.emit({
      type: 'cross_workspace_attempt',
      severity: 'high',
      workspace: caller.workspace,
      actor: caller.actor ?? null,
      details: { resource, id },
    });
  }
  return notFound(resource, id);
}
