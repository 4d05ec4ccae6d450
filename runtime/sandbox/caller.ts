/** Who asks for a sandbox operation: the workspace it acts in (tenancy) and, for events, the user or key. */
export interface Caller {
  workspace: string;
  /** Who asked (user or key id), for events. */
  actor?: string;
}
