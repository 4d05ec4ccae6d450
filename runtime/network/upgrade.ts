/**
 * Stored policies from before first-match. Migration 4 marks every policy stored until then
 * `order: 'deny-first'` (how it was enforced: deny rules ahead of allow rules whatever their
 * order). At the network layer's boot, before the table is rebuilt, each marked policy not yet
 * decided is decided once (`upgradeDenyFirst`): recompiled in order as written (event
 * `policy_upgraded` when that changes what passes: an allow before a deny it overlaps), or, when
 * as written some of its rules could never match, refused, kept deny-first and flagged
 * (`policy.review`, event `policy_review_required`) until the operator applies a new one.
 */
import type { Logger } from 'pino';
import { upgradeDenyFirst } from '../../policies/rule-order.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventSink } from '../events.ts';
import type { NetworkStore } from '../store/networks.ts';

export function upgradeStoredPolicies(deps: { store: NetworkStore; events: EventSink; clock: Clock; logger: Logger }): void {
  for (const rec of deps.store.active()) {
    const p = rec.policy;
    if (!p || p.order !== 'deny-first' || p.review) continue;
    const out = upgradeDenyFirst(p);
    deps.store.update(rec.id, deps.clock.nowMs(), { policy: out.policy });
    const common = { workspace: rec.workspace, networkId: rec.id, actor: null };
    if (out.kind === 'kept') {
      deps.logger.warn(
        { networkId: rec.id, shadowed: out.shadowed },
        'stored policy kept deny-first: as written, some rules could never match',
      );
      deps.events.emit({
        type: 'policy_review_required',
        severity: 'high',
        ...common,
        details: { name: p.name, order: 'deny-first', shadowed: out.shadowed },
      });
    } else if (out.reordered.length) {
      // Same rules, now in order: where an allow comes before a deny it overlaps, the allow now decides.
      deps.events.emit({
        type: 'policy_upgraded',
        severity: 'medium',
        ...common,
        details: { name: p.name, order: 'first-match', reordered: out.reordered },
      });
    }
  }
}
