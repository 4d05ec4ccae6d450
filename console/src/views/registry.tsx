import type { VNode } from 'preact';
import type { Route } from '../hooks.ts';
import { AlertsView } from './alerts.tsx';
import { ApprovalsView } from './approvals.tsx';
import { AuditView } from './audit.tsx';
import { EventsView } from './events.tsx';
import { NetworkView } from './network.tsx';
import { NetworksView } from './networks.tsx';
import { SandboxView } from './sandbox.tsx';
import { SandboxesView } from './sandboxes.tsx';
import { SessionView } from './session.tsx';
import { SessionsView } from './sessions.tsx';
import { WorkflowView } from './workflow.tsx';
import { WorkflowsView } from './workflows.tsx';

export interface ViewDef {
  /** Path pattern of the hash route; `:id` captures one segment. */
  path: string;
  title: string;
  /** Shown in the navigation (detail views are reached by links). */
  nav: boolean;
  /** Scope the view needs; the navigation hides what the principal may not read. */
  scope: string;
  render: (params: Record<string, string>, route: Route) => VNode;
}

/**
 * Every view of the console: a `ViewDef` with the scope its API needs, data over
 * `session.request`, live updates with `useChannel(…)` (the hub takes any channel name). A new
 * view is one entry here; nothing else in the shell changes.
 */
export const VIEWS: ViewDef[] = [
  { path: '/events', title: 'Events', nav: true, scope: 'security:read', render: (_p, r) => <EventsView route={r} /> },
  { path: '/alerts', title: 'Alerts', nav: true, scope: 'security:read', render: () => <AlertsView /> },
  { path: '/sandboxes', title: 'Sandboxes', nav: true, scope: 'sandboxes:read', render: () => <SandboxesView /> },
  { path: '/sandboxes/:id', title: 'Sandbox', nav: false, scope: 'sandboxes:read', render: (p) => <SandboxView id={p.id!} /> },
  { path: '/networks', title: 'Networks', nav: true, scope: 'networks:read', render: () => <NetworksView /> },
  { path: '/networks/:id', title: 'Network', nav: false, scope: 'networks:read', render: (p) => <NetworkView id={p.id!} /> },
  { path: '/sessions', title: 'Sessions', nav: true, scope: 'sessions:read', render: () => <SessionsView /> },
  { path: '/sessions/:id', title: 'Session', nav: false, scope: 'sessions:read', render: (p) => <SessionView id={p.id!} /> },
  { path: '/workflows', title: 'Workflows', nav: true, scope: 'sessions:read', render: (_p, r) => <WorkflowsView route={r} /> },
  { path: '/workflows/:id', title: 'Workflow', nav: false, scope: 'sessions:read', render: (p) => <WorkflowView id={p.id!} /> },
  { path: '/approvals', title: 'Approvals', nav: true, scope: 'agents:read', render: (_p, r) => <ApprovalsView route={r} /> },
  { path: '/audit', title: 'Audit log', nav: true, scope: 'audit:read', render: () => <AuditView /> },
];

/** The view whose pattern matches `path`, with its captured parameters. */
export function match(path: string): { view: ViewDef; params: Record<string, string> } | null {
  const parts = path.split('/').filter(Boolean);
  for (const view of VIEWS) {
    const pattern = view.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    if (
      pattern.every((seg, i) => (seg.startsWith(':') ? ((params[seg.slice(1)] = decodeURIComponent(parts[i]!)), true) : seg === parts[i]))
    )
      return { view, params };
  }
  return null;
}
