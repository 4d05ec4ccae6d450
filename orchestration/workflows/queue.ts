/**
 * Which waiting runs may start now: the pure core of scheduling. Runs are considered oldest
 * first; one starts when the instance runs fewer than `maxRunning` and its department (if it has
 * one) runs fewer than its `maxConcurrentTasks`. A run whose department is full does not hold
 * back runs of other departments, and within a department the order of arrival is kept.
 */
export interface WaitingRun {
  id: string;
  departmentId: string | null;
  state: 'pending' | 'queued';
}

export interface RunningCounts {
  total: number;
  byDepartment: ReadonlyMap<string, number>;
}

export interface Picked {
  /** Runs to start now, in order. */
  start: string[];
  /** Pending runs that must wait: they become `queued`. */
  queue: string[];
}

/** `limitOf` gives a department's `maxConcurrentTasks`, or null when it sets no bound (deleted, or no department). */
export function pickRunnable(
  waiting: readonly WaitingRun[],
  running: RunningCounts,
  limitOf: (departmentId: string) => number | null,
  maxRunning: number,
): Picked {
  let total = running.total;
  const byDep = new Map(running.byDepartment);
  const start: string[] = [];
  const queue: string[] = [];
  for (const w of waiting) {
    const limit = w.departmentId ? limitOf(w.departmentId) : null;
    const used = w.departmentId ? (byDep.get(w.departmentId) ?? 0) : 0;
    if (total < maxRunning && (limit === null || used < limit)) {
      start.push(w.id);
      total++;
      if (w.departmentId) byDep.set(w.departmentId, used + 1);
    } else if (w.state === 'pending') queue.push(w.id);
  }
  return { start, queue };
}
