/**
 * Session lifecycle as data. `active ⇄ paused`; either may end as `completed` (ended by its
 * owner: `PUT {status: 'completed'}`), `expired` (its `config.timeout` passed) or `terminated`
 * (`DELETE`). Ended states are final. Every transition is checked against this table, in one
 * place ({@link canTransition}), by the store's conditional update.
 *
 * What each state allows: `active` takes new work (sandboxes, departments, workflow runs, chat
 * turns); `paused` keeps what runs but refuses new work; the ended states refuse new work and
 * have stopped their sandboxes and cancelled their runs. `completed` and `expired` sessions keep
 * their records (checkpoints, context, messages) readable; `terminated` ones are gone from the API.
 */
export const SESSION_STATES = ['active', 'paused', 'completed', 'expired', 'terminated'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

const NEXT: Record<SessionState, readonly SessionState[]> = {
  active: ['paused', 'completed', 'expired', 'terminated'],
  paused: ['active', 'completed', 'expired', 'terminated'],
  completed: ['terminated'],
  expired: ['terminated'],
  terminated: [],
};

export const canTransition = (from: SessionState, to: SessionState): boolean => NEXT[from].includes(to);
/** States that still have a timer and may take work (paused: no new work, but the timer runs). */
export const OPEN_STATES = ['active', 'paused'] as const satisfies readonly SessionState[];
export const isOpen = (s: SessionState): boolean => s === 'active' || s === 'paused';
/** The states a client may ask for with `PUT` (the others are reached by timeout or `DELETE`). */
export const REQUESTABLE_STATES = ['active', 'paused', 'completed'] as const satisfies readonly SessionState[];
