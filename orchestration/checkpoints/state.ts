import type { Db } from '../../core/db.ts';
import type { DepartmentStore } from '../departments/store.ts';
import type { SessionRecord, SessionStore } from '../sessions/store.ts';
import type { StateSnapshot } from './store.ts';

/**
 * A session's own state in a checkpoint: its name, description, status and config, and its
 * departments. Restoring puts back the name, description and config (but not `timeout`: a
 * restore neither shortens nor extends the session's life, and not the status: the session stays
 * active) and makes the recorded departments the session's departments again (same ids; ones
 * created since are removed, ones removed since come back).
 */
export class SessionStates {
  readonly #db: Db;
  readonly #sessions: SessionStore;
  readonly #departments: DepartmentStore;

  constructor(db: Db, sessions: SessionStore, departments: DepartmentStore) {
    this.#db = db;
    this.#sessions = sessions;
    this.#departments = departments;
  }

  snapshot(s: SessionRecord): StateSnapshot {
    return {
      session: { name: s.name, description: s.description, status: s.status, config: s.config },
      departments: this.#departments.ofSession(s.id),
    };
  }

  /** Puts `snap` back; runs inside the caller's transaction when there is one. */
  restore(s: SessionRecord, snap: StateSnapshot, nowMs: number): void {
    this.#db.tx(() => {
      this.#sessions.patch(s.id, nowMs, {
        name: snap.session.name,
        description: snap.session.description,
        config: { ...snap.session.config, timeout: s.config.timeout },
      });
      this.#departments.restoreOfSession(s.id, snap.departments, nowMs);
    });
  }
}
