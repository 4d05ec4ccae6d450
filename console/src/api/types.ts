/**
 * The shapes the console reads from the public API, under the console's names. Every one comes
 * from the SDK's types (sdk/types.ts), which are derived from the generated OpenAPI types
 * (sdk/generated/openapi.ts, kept equal to the served `/v1/openapi.json` by a test): a route that
 * changes changes these with it, and the console's typecheck says where a view must follow.
 * Type-only imports: nothing of the SDK is bundled but the state lists of sdk/states.ts.
 */
import type {
  NetworkInfo,
  NetworkPolicy,
  PolicyInForce,
  SandboxInfo,
  SecurityAlert,
  SessionInfo,
  Tokens,
  WorkflowInfo,
  WorkflowRun,
  WorkflowRunState,
} from '../../../sdk/types.ts';
import { runHasEnded } from '../../../sdk/states.ts';

export type {
  Approval,
  ApprovalStatus,
  AuditEntry,
  AuditVerification,
  Me,
  NetworkPolicy,
  Page,
  PolicyInForce,
  PolicyRule,
  RuleInForce,
  SandboxMetrics,
  SecurityEvent,
  SessionStatus,
  SessionUpdate,
  Severity,
  WorkflowProgress,
  WorkflowRun,
  WorkflowStatus,
} from '../../../sdk/types.ts';
export type { NetworkProposal as Proposal, DepartmentInfo as Department, CheckpointInfo as Checkpoint } from '../../../sdk/types.ts';
export {
  APPROVAL_STATES as APPROVAL_STATUSES,
  RUN_STATES as RUN_STATUSES,
  SESSION_STATES as SESSION_STATUSES,
  SEVERITIES,
} from '../../../sdk/states.ts';

/** Access and refresh tokens from login or refresh. */
export type LoginSession = Tokens;
export type Sandbox = SandboxInfo;
/**
 * A network. The document describes `policy` and `policyInForce` as free-form objects: `policy` is
 * the stored request (the body of `POST /v1/networks/{id}/policies`), `policyInForce` the kernel
 * read-back the SDK describes.
 */
export type Network = Omit<NetworkInfo, 'policy' | 'policyInForce'> & {
  policy: NetworkPolicy | null;
  policyInForce?: PolicyInForce | null;
};
export type DirectorSession = SessionInfo;
export type Workflow = WorkflowInfo;
export type RunStatus = WorkflowRunState;
export type StepAttempt = WorkflowRun['steps'][number]['attempts'][number];

/** A packet and byte count of an nft counter. */
export type Counts = NonNullable<PolicyInForce['counters']['allowed']>;
/** `security_alert` data on the `security` channel. */
export type Alert = SecurityAlert['alert'];

/** Whether a run in state `s` may still change (not started yet, or going). */
export const runIsOpen = (s: string | null | undefined): boolean => typeof s === 'string' && s !== '' && !runHasEnded(s);
