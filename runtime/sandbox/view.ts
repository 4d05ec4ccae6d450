import { isoTime } from '../../core/clock.ts';
import type { SandboxRecord } from '../store/sandboxes.ts';

/** The public shape of a sandbox (API responses). Environment values never appear: only names. */
export interface SandboxView {
  id: string;
  name: string;
  image: string;
  status: string;
  reason: string | null;
  command: string[] | null;
  environmentKeys: string[];
  resourceLimits: SandboxRecord['spec']['resourceLimits'];
  securityPolicy: SandboxRecord['spec']['securityPolicy'];
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
  sessionId: string | null;
  departmentId: string | null;
  environmentId: string | null;
}

export function toView(r: SandboxRecord): SandboxView {
  const opt = (ms: number | null) => (ms === null ? null : isoTime(ms));
  return {
    id: r.id,
    name: r.name,
    image: r.image,
    status: r.status,
    reason: r.reason,
    command: r.spec.command,
    environmentKeys: r.spec.environmentKeys,
    resourceLimits: r.spec.resourceLimits,
    securityPolicy: r.spec.securityPolicy,
    networkMode: r.spec.networkMode,
    networkId: r.networkId,
    ipAddress: r.ipAddress,
    workdir: r.spec.workdir,
    labels: r.labels,
    exitCode: r.exitCode,
    createdAt: isoTime(r.createdMs),
    startedAt: opt(r.startedMs),
    expiresAt: r.status === 'running' ? opt(r.deadlineMs) : null,
    stoppedAt: opt(r.stoppedMs),
    sessionId: r.owner.sessionId,
    departmentId: r.owner.departmentId,
    environmentId: r.owner.environmentId,
  };
}
