import { unwrap, type Transport } from '../transport.ts';
import { idPath } from './request.ts';
import type { AuditEntry, AuditQuery, AuditVerification, ProfileRequest, SecurityProfile } from '../types.ts';

/** `client.security`: security profiles (ceilings), enforcement and active alerts. */
export class Security {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  readonly profiles = {
    create: async (body: ProfileRequest): Promise<SecurityProfile> => unwrap(await this.#t.api.POST('/v1/security/profiles', { body })),
    list: async (): Promise<SecurityProfile[]> => unwrap(await this.#t.api.GET('/v1/security/profiles')).items,
    get: async (id: string): Promise<SecurityProfile> => unwrap(await this.#t.api.GET('/v1/security/profiles/{id}', idPath(id))),
    replace: async (id: string, body: ProfileRequest): Promise<SecurityProfile> =>
      unwrap(await this.#t.api.PUT('/v1/security/profiles/{id}', { ...idPath(id), body })),
    delete: async (id: string): Promise<void> => {
      unwrap(await this.#t.api.DELETE('/v1/security/profiles/{id}', idPath(id)));
    },
  };

  /** The workspace's default profile (the outermost ceiling), or null. */
  async workspaceProfile(): Promise<SecurityProfile | null> {
    return unwrap(await this.#t.api.GET('/v1/security/workspace-profile')).profile;
  }

  async setWorkspaceProfile(profileId: string | null): Promise<SecurityProfile | null> {
    return unwrap(await this.#t.api.PUT('/v1/security/workspace-profile', { body: { profileId } })).profile;
  }

  /** Enforces a profile (`prf_...`) on running sandboxes, or a shipped network policy (`deny-all` ...) on a network, now. */
  async enforce(policyId: string, scope: { sandboxId?: string; networkId?: string; sessionId?: string }): Promise<Record<string, unknown>> {
    return unwrap(await this.#t.api.POST('/v1/security/policies/{policyId}/enforce', { params: { path: { policyId } }, body: { scope } }));
  }

  /** Alerts whose condition holds now. */
  async alerts(): Promise<Record<string, unknown>[]> {
    return unwrap(await this.#t.api.GET('/v1/security/alerts')).items;
  }
}

/** `client.audit`: the hash-chained audit log. */
export class Audit {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** One page of entries, oldest first; page on with `after: page.nextCursor`. */
  async list(query: AuditQuery = {}): Promise<{ items: AuditEntry[]; nextCursor: number | null }> {
    return unwrap(await this.#t.api.GET('/v1/audit-logs', { params: { query } }));
  }

  /** Verifies the whole chain: `{ok: true, entries, head}` or where it breaks and why. */
  async verify(): Promise<AuditVerification> {
    return unwrap(await this.#t.api.GET('/v1/audit-logs/verify'));
  }
}
