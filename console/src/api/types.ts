/**
 * The shapes the console reads from the public API (`/v1/openapi.json` is the reference). Only
 * the fields the console uses are declared; everything arrives in the Director envelope.
 */
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'low', 'medium', 'high', 'critical'];

export interface Me {
  userId: string;
  username: string;
  keyId: string | null;
  workspace: string;
  role: string;
  scopes: string[];
}

export interface LoginSession {
  token: string;
  refreshToken: string;
  expiresAt: string;
  refreshExpiresAt: string;
  workspace: string;
}

export interface SecurityEvent {
  id: string;
  seq: number;
  type: string;
  severity: Severity;
  timestamp: string;
  workspace: string | null;
  sandboxId: string | null;
  networkId: string | null;
  sessionId: string | null;
  actor: string | null;
  details: Record<string, unknown>;
}

export interface Alert {
  rule: string;
  severity: string;
  message: string;
  timestamp: string;
}

export interface Sandbox {
  id: string;
  name: string;
  image: string;
  status: 'creating' | 'running' | 'stopping' | 'stopped' | 'failed' | 'deleted';
  reason: string | null;
  command: string[] | null;
  environmentKeys: string[];
  resourceLimits: { cpu: number; memory: number; disk: number; pids: number; maxDuration: number; network: boolean };
  securityPolicy: Record<string, unknown>;
  networkMode: string;
  networkId: string | null;
  ipAddress: string | null;
  workdir: string | null;
  labels: Record<string, string>;
  exitCode: number | null;
  createdAt: string;
  startedAt: string | null;
  expiresAt: string | null;
  stoppedAt: string | null;
}

export interface SandboxMetrics {
  sandboxId: string;
  timestamp: string;
  cpu: { percent: number; limitCores: number };
  memory: { usageBytes: number; limitBytes: number };
  pids: { current: number; limit: number };
  network: { rxBytes: number; txBytes: number };
  uptimeMs: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Counts {
  packets: number;
  bytes: number;
}

export interface RuleInForce {
  index: number;
  action: 'allow' | 'deny';
  audit: boolean;
  protocol: string;
  source?: string;
  destination?: string;
  port?: number | { from: number; to: number } | number[];
  logged: boolean;
  counter: Counts | null;
}

export interface PolicyInForce {
  isolated: boolean;
  mode: 'enforce' | 'audit' | null;
  logging: boolean | null;
  outbound: RuleInForce[];
  inbound: RuleInForce[];
  guards: { chain: string; guard: string; verdict: string | null; counter: Counts | null }[];
  counters: { allowed: Counts | null; denied: Counts | null };
  generation: number | null;
}

export interface PolicyRule {
  action: 'allow' | 'deny';
  protocol: string;
  source?: string;
  destination?: string;
  port?: unknown;
  description?: string;
}

export interface NetworkPolicy {
  name: string;
  description?: string;
  inbound: PolicyRule[];
  outbound: PolicyRule[];
  logging?: boolean;
  metrics?: boolean;
  mode?: 'enforce' | 'audit';
}

export interface Network {
  id: string;
  name: string;
  subnet: string;
  gateway: string;
  enableDNS: boolean;
  internal: boolean;
  isolated: boolean;
  bridge: string;
  status: string;
  labels: Record<string, string>;
  policy: NetworkPolicy | null;
  policyInForce?: PolicyInForce | null;
  sandboxes?: string[];
  createdAt: string;
}

export interface Proposal {
  policy: NetworkPolicy;
  added: PolicyRule[];
  blockedByDeny: { observation: Record<string, unknown>; index: number; rule: PolicyRule }[];
  diff: string;
}

export interface AuditEntry {
  id: string;
  seq: number;
  ts: string;
  actor: string | null;
  username: string | null;
  workspace: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number;
  requestId: string | null;
  source: string | null;
  userAgent: string | null;
  prevHash: string;
  hash: string;
}

export interface AuditVerification {
  ok: boolean;
  entries?: number;
  head?: string;
  brokenAt?: { seq: number; id: string };
  reason?: 'hash_mismatch' | 'prev_mismatch' | 'gap';
}

export type SessionStatus = 'active' | 'paused' | 'completed' | 'expired' | 'terminated';
export const SESSION_STATUSES: readonly SessionStatus[] = ['active', 'paused', 'completed', 'expired', 'terminated'];

export interface DirectorSession {
  id: string;
  type: string;
  name: string;
  description: string;
  status: SessionStatus;
  reason: string | null;
  config: Record<string, unknown>;
  metrics: { activeDepartments: number; totalTasks: number };
  createdAt: string;
  updatedAt: string;
  expiresAt: string | null;
  endedAt: string | null;
}

/** `session_update` on the `sessions` channel. */
export interface SessionUpdate {
  sessionId: string;
  status: SessionStatus | null;
  metrics: { activeDepartments: number; totalTasks: number };
  timestamp: string;
  reason?: string;
}

export interface Department {
  id: string;
  sessionId: string;
  name: string;
  domain: string;
  capabilities: string[];
  config: Record<string, unknown>;
  createdAt: string;
}

export interface Checkpoint {
  id: string;
  sessionId: string;
  name: string;
  description: string;
  createdAt: string;
  createdBy: string | null;
  size: { files: number; bytes: number; storedBytes: number };
  sandboxes: { sandboxId: string; name: string; status: string }[];
}

export type RunStatus = 'pending' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'timed_out';
export const RUN_STATUSES: readonly RunStatus[] = ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled', 'timed_out'];
export const runIsOpen = (s: string | null | undefined): boolean => s === 'pending' || s === 'queued' || s === 'running';

export interface Workflow {
  id: string;
  sessionId: string;
  departmentId: string | null;
  name: string;
  description: string;
  steps: Record<string, unknown>[];
  config: { timeout: number; maxRetries: number };
  sandboxId: string | null;
  status: RunStatus;
  lastRunId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface StepAttempt {
  attempt: number;
  round: number;
  status: string;
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number | null;
  startedAt: string;
  endedAt: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  criteria?: { criterion: string; ok: boolean; saw: string }[];
  checkpointId?: string;
  error?: string;
}

export interface WorkflowRun {
  id: string;
  number: number;
  status: RunStatus;
  step: number;
  progress: number;
  currentStep: { step: number; type: string; status: string; startTime: string } | null;
  retries: number;
  maxRetries: number;
  sandboxId: string | null;
  reason: { code: string; message: string; step?: number; criterion?: string; saw?: string; exitCode?: number } | null;
  output: string | null;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  steps: { step: number; type: string; status: string; attempts: StepAttempt[] }[];
}

export interface WorkflowStatus {
  workflowId: string;
  sessionId: string;
  name: string;
  status: RunStatus;
  totalSteps: number;
  run: WorkflowRun | null;
}

/** `workflow_progress` on the `workflows` channel. */
export interface WorkflowProgress {
  workflowId: string;
  runId: string;
  step: number;
  totalSteps: number;
  progress: number;
  currentStep: { type: string; status: string; startTime: string };
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'timed_out' | 'superseded' | 'cancelled';
export const APPROVAL_STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'timed_out', 'superseded', 'cancelled'];

export interface Approval {
  id: string;
  sessionId: string;
  agentId: string;
  turnId: string;
  callId: string;
  tool: string;
  input: unknown;
  inputHash: string;
  status: ApprovalStatus;
  reason: string | null;
  decidedBy: string | null;
  createdAt: string;
  expiresAt: string;
  decidedAt: string | null;
}
