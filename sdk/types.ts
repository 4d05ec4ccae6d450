/**
 * Names for the shapes of the generated OpenAPI types (./generated/openapi.ts), so code reads
 * `Sandbox` rather than a path into `paths`. Every name here is derived from the served document:
 * when a route changes, `npm run sdk:generate` changes these with it. New areas (sessions,
 * workflows ...) add their names the same way, one line each.
 */
import type { components, paths } from './generated/openapi.ts';

export type { components, paths };

export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch';
/** Paths of the served document that answer `M`. */
export type PathsWith<M extends HttpMethod> = { [P in keyof paths]: paths[P] extends Record<M, object> ? P : never }[keyof paths];

type Operation<P extends keyof paths, M extends HttpMethod> = NonNullable<paths[P][M]>;
type JsonContent<R> = R extends { content: { 'application/json': infer B } } ? B : never;
type SuccessBody<O> = O extends { responses: infer R } ? JsonContent<R[Extract<keyof R, 200 | 201>]> : never;

/** The `data` of an operation's success envelope. */
export type ResponseData<P extends keyof paths, M extends HttpMethod> = SuccessBody<Operation<P, M>> extends { data: infer D } ? D : never;
/** An operation's JSON request body. */
export type RequestBody<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;
/** An operation's query parameters. */
export type QueryOf<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** The error envelope every route answers with on failure. */
export type ErrorEnvelope = components['schemas']['ErrorEnvelope'];

/** A list page: `items`, `total`, `limit`, `offset`. */
export type Page<T> = { items: T[]; total: number; limit: number; offset: number };

// Auth
export type LoginRequest = RequestBody<'/v1/auth/login', 'post'>;
/** Access and refresh tokens from login or refresh. */
export type Tokens = ResponseData<'/v1/auth/login', 'post'>;
export type ApiKey = ResponseData<'/v1/api-keys', 'post'>;
export type CreateApiKeyRequest = RequestBody<'/v1/api-keys', 'post'>;

// Sandboxes
export type SandboxInfo = ResponseData<'/v1/sandboxes/{id}', 'get'>;
export type SandboxStatus = SandboxInfo['status'];
export type CreateSandboxRequest = RequestBody<'/v1/sandboxes', 'post'>;
export type ListSandboxesQuery = QueryOf<'/v1/sandboxes', 'get'>;
export type ExecuteRequest = RequestBody<'/v1/sandboxes/{id}/execute', 'post'>;
export type ExecResult = ResponseData<'/v1/sandboxes/{id}/execute', 'post'>;
export type SandboxMetrics = ResponseData<'/v1/sandboxes/{id}/metrics', 'get'>;
export type FileWritten = ResponseData<'/v1/sandboxes/{id}/files', 'put'>;

// Networks
export type NetworkInfo = ResponseData<'/v1/networks/{id}', 'get'>;
export type CreateNetworkRequest = RequestBody<'/v1/networks', 'post'>;
export type NetworkPolicy = RequestBody<'/v1/networks/{id}/policies', 'post'>;
export type PolicyRule = NonNullable<NetworkPolicy['outbound']>[number];
export type AllowAccessRequest = RequestBody<'/v1/networks/{id}/allow-access', 'post'>;
/** One connection to judge: direction, protocol, the far end (address and/or host name), port. */
export type PolicyTestRequest = RequestBody<'/v1/networks/{id}/policy/test', 'post'>;
/** Whether that connection would get through the chains in force, and what decided. */
export type PolicyVerdict = ResponseData<'/v1/networks/{id}/policy/test', 'post'>;

// Security and audit
export type SecurityEvent = ResponseData<'/v1/security/events', 'get'>['items'][number];
export type Severity = SecurityEvent['severity'];
export type EventsQuery = QueryOf<'/v1/security/events', 'get'>;
export type EventsPage = ResponseData<'/v1/security/events', 'get'>;
export type ExportQuery = QueryOf<'/v1/security/events/export', 'get'>;
export type EventSummary = ResponseData<'/v1/security/events/summary', 'get'>;
export type SecurityProfile = ResponseData<'/v1/security/profiles/{id}', 'get'>;
export type ProfileRequest = RequestBody<'/v1/security/profiles', 'post'>;
export type AuditEntry = ResponseData<'/v1/audit-logs', 'get'>['items'][number];
export type AuditQuery = QueryOf<'/v1/audit-logs', 'get'>;
export type AuditVerification = ResponseData<'/v1/audit-logs/verify', 'get'>;

/**
 * Who the caller is (`GET /v1/auth/me`). The document describes this answer as a free-form
 * object; these are the fields the route returns.
 */
export interface Me {
  userId: string;
  username: string | null;
  keyId: string | null;
  workspace: string;
  role: string;
  scopes: string[];
}

/**
 * One direction's rule as the kernel has it (`policyInForce.outbound[]` of a network): the
 * document describes `policyInForce` as a free-form object; these are the fields the read-back
 * returns (netfilter's NetworkView).
 */
export interface RuleInForce {
  index: number;
  action: 'allow' | 'deny';
  /** A deny compiled for audit mode: logged and counted, not dropped. */
  audit: boolean;
  protocol: 'tcp' | 'udp' | 'icmp' | 'all';
  source?: string;
  destination?: string;
  port?: number | { from: number; to: number };
  sets: string[];
  logged: boolean;
  counter: { packets: number; bytes: number } | null;
}

/** The policy in force for one network, read back from the kernel's nft table. */
export interface PolicyInForce {
  isolated: boolean;
  /** null: the network has no policy (its chains end in accept). */
  mode: 'enforce' | 'audit' | null;
  logging: boolean | null;
  outbound: RuleInForce[];
  inbound: RuleInForce[];
  counters: { allowed: { packets: number; bytes: number } | null; denied: { packets: number; bytes: number } | null };
  generation: number | null;
  [key: string]: unknown;
}

/**
 * An audit-mode proposal (`GET /v1/networks/{id}/proposal`): the document describes it as a
 * free-form object; these are the fields the server fills (runtime/network/propose.ts).
 */
export interface NetworkProposal {
  /** The policy in force plus `added` (rules in order, first match wins). */
  policy: NetworkPolicy;
  /** The allow rules added, outbound first. */
  added: PolicyRule[];
  /** Traffic a deny rule decides first: no allow is proposed for it. */
  blockedByDeny: { observation: Record<string, unknown>; index: number; rule: PolicyRule }[];
  /** Rules of a deny-first policy that could never match, left out (indexes of the policy in force). */
  removed: Record<string, unknown>[];
  /** Readable unified-style diff (`+ ` added, `- ` removed, `  ` unchanged, `! ` decided by a deny rule). */
  diff: string;
}

/** `sandbox_event` on the hub's `sandboxes` channel: a lifecycle step. */
export interface SandboxEvent {
  sandboxId: string;
  event: 'created' | 'stopped' | 'deleted' | 'exited';
  status: string | null;
  timestamp: string;
  exitCode?: number;
  reason?: string;
  resourceUsage?: Record<string, unknown>;
}

/** `security_alert` on the hub's `security` channel (the Director Protocol's shape). */
export interface SecurityAlert {
  alert: { rule: string; severity: string; message: string; timestamp: string };
}

/** `session_update` on the hub's `sessions` channel. */
export interface SessionUpdate {
  sessionId: string;
  status: SessionStatus | null;
  metrics: { activeDepartments: number; totalTasks: number };
  timestamp: string;
  reason?: string;
}

/** `workflow_progress` on the hub's `workflows` channel. */
export interface WorkflowProgress {
  workflowId: string;
  runId: string;
  step: number;
  totalSteps: number;
  progress: number;
  currentStep: { type: string; status: string; startTime: string };
}

/**
 * The data of each hub message type, for typed listeners. The hub's messages are not part of the
 * OpenAPI document (see the server's api/ws/protocol.ts and channels.ts); a channel that comes
 * later adds a line here.
 */
export interface HubMessageData {
  security_event: SecurityEvent;
  security_alert: SecurityAlert;
  sandbox_event: SandboxEvent;
  session_update: SessionUpdate;
  workflow_progress: WorkflowProgress;
}

// Sessions
export type SessionInfo = ResponseData<'/v1/sessions/{id}', 'get'>;
export type SessionStatus = SessionInfo['status'];
export type CreateSessionRequest = RequestBody<'/v1/sessions', 'post'>;
export type UpdateSessionRequest = RequestBody<'/v1/sessions/{id}', 'put'>;
export type ListSessionsQuery = QueryOf<'/v1/sessions', 'get'>;
export type SessionMessage = ResponseData<'/v1/sessions/{id}/messages', 'get'>['items'][number];
export type MessagesQuery = QueryOf<'/v1/sessions/{id}/messages', 'get'>;
export type DepartmentInfo = ResponseData<'/v1/departments/{id}', 'get'>;
export type CheckpointInfo = ResponseData<'/v1/checkpoints/{id}', 'get'>;

// Workflows
export type WorkflowInfo = ResponseData<'/v1/workflows/{id}', 'get'>;
export type CreateWorkflowRequest = RequestBody<'/v1/workflows', 'post'>;
export type WorkflowStep = CreateWorkflowRequest['steps'][number];
export type StartWorkflowRequest = RequestBody<'/v1/workflows/{id}/start', 'post'>;
export type ListWorkflowsQuery = QueryOf<'/v1/workflows', 'get'>;
/** The latest run of a workflow: state, current step, attempts, rollbacks and the reason it did not complete. */
export type WorkflowStatus = ResponseData<'/v1/workflows/{id}/status', 'get'>;
export type WorkflowRunState = WorkflowStatus['status'];
export type WorkflowRun = NonNullable<WorkflowStatus['run']>;

/**
 * Why a run did not complete (`run.reason`, and the `run` event's `reason`): `code`
 * (`verify_failed`, `execute_failed`, `checkpoint_failed`, `policy_violation`, `step_error`,
 * `sandbox_failed`, `interrupted`, `timed_out`, `cancelled`, `session_ended`), `message`, and
 * where known `step`, `criterion`, `saw`, `exitCode`.
 */
export type WorkflowFailure = NonNullable<WorkflowRun['reason']>;

/**
 * One event of a workflow's server-sent stream (`GET /v1/workflows/{id}/events`): `id` counts
 * from 1 per workflow with no holes. Types: `run` (state changes), `sandbox` (the run's own
 * sandbox), `step` (an attempt starting or ending), `retry`, `rollback`. The stream's closing
 * `end` is not yielded: iteration simply ends.
 */
export type WorkflowEvent =
  | { id: number; type: 'run'; data: WorkflowRunEvent }
  | { id: number; type: 'step'; data: WorkflowStepEvent }
  | { id: number; type: 'sandbox' | 'retry' | 'rollback'; data: Record<string, unknown> };

/** `run` event data: the run's new state. */
export interface WorkflowRunEvent {
  runId: string;
  number: number;
  status: WorkflowRunState;
  step: number;
  retries: number;
  sandboxId: string | null;
  reason?: WorkflowFailure;
  [key: string]: unknown;
}

/** `step` event data: the seed's `workflow_progress` fields plus the attempt's. */
export interface WorkflowStepEvent {
  workflowId: string;
  step: number;
  totalSteps: number;
  progress: number;
  currentStep: { type: string; status: string; startTime: string; [key: string]: unknown };
  attempt: number;
  round: number;
  endTime?: string;
  durationMs?: number;
  exitCode?: number;
  timedOut?: boolean;
  [key: string]: unknown;
}

// Agents, chat and approvals
export type AgentInfo = ResponseData<'/v1/agents/{id}', 'get'>;
export type CreateAgentRequest = RequestBody<'/v1/agents', 'post'>;
export type ListAgentsQuery = QueryOf<'/v1/agents', 'get'>;
export type AgentEventsPage = ResponseData<'/v1/agents/{id}/events', 'get'>;
export type ChatRequest = RequestBody<'/v1/chat', 'post'>;
/** The answer of a whole turn (`POST /v1/chat` as JSON). */
export type ChatResponse = ResponseData<'/v1/chat', 'post'>;
/** `done` event data: the turn's answer (the JSON answer's fields but `agentId` and `steps`). */
export type ChatDone = Pick<ChatResponse, 'sessionId' | 'turnId' | 'response' | 'finishReason' | 'usage' | 'cost'> & {
  reason?: string | null;
};
export type Approval = ResponseData<'/v1/approvals/{id}', 'get'>;
export type ApprovalStatus = Approval['status'];
export type ListApprovalsQuery = QueryOf<'/v1/approvals', 'get'>;

/**
 * One event of a chat stream (`POST /v1/chat` with `Accept: text/event-stream`, or
 * `GET /v1/chat/{sessionId}/events`), the Denkeeper seed's types. `id` resumes the stream.
 * Every turn ends with exactly one `done` or `error`.
 */
export type ChatEvent =
  | { id: number; type: 'content' | 'thinking'; data: { text: string } }
  | { id: number; type: 'tool_start'; data: { callId: string; tool: string; input: unknown } }
  | {
      id: number;
      type: 'tool_approval';
      data: { approvalId: string; callId: string; tool: string; input: unknown; inputHash: string; expiresAt: string };
    }
  | {
      id: number;
      type: 'tool_end';
      data: { callId: string; tool: string; status: string; durationMs: number; exitCode?: number; error?: string; result?: unknown };
    }
  | { id: number; type: 'usage'; data: Record<string, unknown> }
  | { id: number; type: 'done'; data: ChatDone }
  | { id: number; type: 'error'; data: { sessionId: string; turnId: string; code: string; message: string } };
