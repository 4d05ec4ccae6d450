/**
 * Who is calling, and what they may do. Routes see only a {@link Principal}; how it was
 * established (JWT or API key) stays inside `api/auth/`.
 */
export const ROLES = ['admin', 'operator', 'auditor', 'developer'] as const;
export type Role = (typeof ROLES)[number];

export const SCOPES = [
  'sandboxes:read',
  'sandboxes:write',
  'sandboxes:exec',
  'networks:read',
  'networks:write',
  'security:read',
  'security:write',
  'audit:read',
  'webhooks:write',
  'keys:write',
  'sessions:read',
  'sessions:write',
  'agents:read',
  'agents:write',
  'chat',
  'approvals:write',
  'vault:read',
  'vault:write',
  'admin',
] as const;
export type Scope = (typeof SCOPES)[number];

/** What each role may do. An API key's scopes are a subset of its creator's role's scopes. */
export const ROLE_SCOPES: Record<Role, readonly Scope[]> = {
  admin: SCOPES,
  operator: [
    'sandboxes:read',
    'networks:read',
    'networks:write',
    'security:read',
    'security:write',
    'webhooks:write',
    'keys:write',
    'sessions:read',
    'agents:read',
    'vault:read',
  ],
  auditor: ['sandboxes:read', 'networks:read', 'security:read', 'audit:read', 'sessions:read', 'agents:read'],
  developer: [
    'sandboxes:read',
    'sandboxes:write',
    'sandboxes:exec',
    'networks:read',
    'keys:write',
    'sessions:read',
    'sessions:write',
    'agents:read',
    'agents:write',
    'chat',
    'approvals:write',
    'vault:read',
    'vault:write',
  ],
};

export interface Principal {
  kind: 'user' | 'key';
  /** `usr_...` for users; for keys, the user who created the key. */
  userId: string;
  username: string;
  /** `key_...` when authenticated by an API key. */
  keyId: string | null;
  /** The workspace this request acts in (one per request). */
  workspace: string;
  role: Role;
  scopes: ReadonlySet<Scope>;
  /** JWT id (for logout/revocation) when authenticated by a token. */
  tokenId: string | null;
}

/** For events and audit: `usr_x` or `key_y (usr_x)`. */
export const actorOf = (p: Principal): string => (p.keyId ? `${p.keyId} (${p.userId})` : p.userId);
