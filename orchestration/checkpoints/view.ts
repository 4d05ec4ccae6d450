import { isoTime } from '../../core/clock.ts';
import type { CheckpointRecord, CheckpointSummary } from './store.ts';

/** The public shape of a checkpoint (API responses): what it holds, not the held content itself. */
export function toView(s: CheckpointSummary) {
  return {
    id: s.id,
    sessionId: s.sessionId,
    name: s.name,
    description: s.description,
    data: s.data,
    createdAt: isoTime(s.createdMs),
    createdBy: s.createdBy,
    size: {
      files: s.fileCount,
      bytes: s.bytes,
      storedBytes: s.files.reduce((n, x) => n + x.mounts.reduce((m, y) => m + y.newBytes, 0), 0),
    },
    state: { departments: s.departments },
    context: { windows: s.contextWindows, items: s.contextItems },
    messages: s.messageCount,
    sandboxes: s.files.map((x) => ({
      sandboxId: x.sandboxId,
      name: x.name,
      image: x.image,
      status: x.status,
      mounts: x.mounts.map((m) => ({
        path: m.path,
        files: m.files,
        directories: m.directories,
        symlinks: m.symlinks,
        bytes: m.bytes,
        storedBytes: m.newBytes,
        filesRead: m.filesRead,
        skipped: m.skipped,
      })),
    })),
  };
}
export type CheckpointView = ReturnType<typeof toView>;

export function summaryOf(r: CheckpointRecord): CheckpointSummary {
  const { state, context, messages, ...rest } = r;
  return {
    ...rest,
    departments: state.departments.length,
    contextWindows: context.windows.length,
    contextItems: context.windows.reduce((n, w) => n + w.items.length, 0),
    messageCount: messages.length,
  };
}
