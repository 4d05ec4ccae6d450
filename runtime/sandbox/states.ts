/**
 * Sandbox lifecycle as data: `creating → running → stopping → stopped | failed`, then
 * `deleted`. Every transition the runtime makes is checked against this table, in one place.
 */
export const SANDBOX_STATES = ['creating', 'running', 'stopping', 'stopped', 'failed', 'deleted'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

const NEXT: Record<SandboxState, readonly SandboxState[]> = {
  creating: ['running', 'failed', 'deleted'],
  running: ['stopping', 'stopped', 'failed', 'deleted'],
  stopping: ['stopped', 'failed', 'deleted'],
  stopped: ['deleted'],
  failed: ['deleted'],
  deleted: [],
};

export const canTransition = (from: SandboxState, to: SandboxState): boolean => NEXT[from].includes(to);
/** States in which a sandbox holds a container (and counts against host limits). */
export const ACTIVE_STATES = ['creating', 'running', 'stopping'] as const satisfies readonly SandboxState[];
export const isActive = (s: SandboxState): boolean => (ACTIVE_STATES as readonly SandboxState[]).includes(s);
export const isTerminal = (s: SandboxState): boolean => s === 'stopped' || s === 'failed' || s === 'deleted';
