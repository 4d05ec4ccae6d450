/**
 * Approval decisions as pure functions: whether a tool call needs a human's approval (the
 * agent's policy), whether an auto-approve rule covers it, and the binding of an approval to
 * exactly one call (tool name, call id and a hash of its input). The services around them only
 * store records and wait; everything decided here is tested without I/O.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';

export const APPROVAL_LEVELS = ['required', 'none'] as const;
export type ApprovalLevel = (typeof APPROVAL_LEVELS)[number];

const Level = Type.Union([Type.Literal('required'), Type.Literal('none')], {
  description: '`required`: a person approves each call first; `none`: it runs at once',
});

/** Argument patterns: a tool argument name → a glob the argument must match whole (`*` any text, `?` one character). */
export const ArgumentMatchSchema = Type.Record(
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' }),
  Type.String({ minLength: 1, maxLength: 256 }),
  {
    maxProperties: 8,
    description:
      'Argument name → glob the argument must match whole (`*` any text, `?` one character; strings as they are, other values as JSON). All must match.',
  },
);

export const ApprovalRuleSchema = Type.Object(
  {
    tool: Type.String({ minLength: 1, maxLength: 64, pattern: '^(\\*|[a-z][a-z0-9_]*)$', description: 'A tool name, or `*` for any' }),
    match: Type.Optional(ArgumentMatchSchema),
    approval: Level,
  },
  { additionalProperties: false },
);
export type ApprovalRule = Static<typeof ApprovalRuleSchema>;

export const ApprovalPolicySchema = Type.Union(
  [
    Type.Literal('always', { description: 'every tool call waits for approval' }),
    Type.Literal('never', { description: 'no tool call waits' }),
    Type.Object(
      {
        rules: Type.Array(ApprovalRuleSchema, {
          maxItems: 64,
          description: 'In order; the first rule whose tool and arguments match decides',
        }),
        /** When no rule matches (default `required`). */
        otherwise: Type.Optional(Level),
      },
      { additionalProperties: false },
    ),
  ],
  {
    description:
      'Which tool calls wait for a person. Default: `read_file` and `list_files` run at once, everything else (`execute`, `write_file`) waits.',
  },
);
export type ApprovalPolicy = Static<typeof ApprovalPolicySchema>;

export const DEFAULT_POLICY: ApprovalPolicy = {
  rules: [
    { tool: 'read_file', approval: 'none' },
    { tool: 'list_files', approval: 'none' },
  ],
  otherwise: 'required',
};

/**
 * Whole-string glob match, `*` (any run, newlines included) and `?` (one character), in time
 * linear in practice: the classic two-pointer walk that backtracks only to the last `*`, so a
 * hostile argument cannot make a pattern take exponential time (unlike a regular expression).
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** An argument as the patterns see it: a string as it is, anything else as JSON, a missing one as empty. */
export function argumentText(v: unknown): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : (canonicalJson(v) ?? '');
}

/** True when every pattern of `match` matches its argument of `input`. */
export function argumentsMatch(match: Record<string, string> | undefined | null, input: unknown): boolean {
  if (!match) return true;
  const args = input !== null && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
  return Object.entries(match).every(([name, glob]) => globMatch(glob, argumentText(args[name])));
}

/** What the policy says about one call, and which rule said it (`always`, `never`, `rules[2]`, `otherwise`). */
export function approvalNeeded(policy: ApprovalPolicy, tool: string, input: unknown): { required: boolean; by: string } {
  if (policy === 'always') return { required: true, by: 'always' };
  if (policy === 'never') return { required: false, by: 'never' };
  for (const [i, r] of policy.rules.entries()) {
    if ((r.tool === '*' || r.tool === tool) && argumentsMatch(r.match, input))
      return { required: r.approval === 'required', by: `rules[${i}]` };
  }
  return { required: (policy.otherwise ?? 'required') === 'required', by: 'otherwise' };
}

/** JSON with object keys sorted at every level, so equal inputs hash equally whatever their key order. */
export function canonicalJson(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x) ?? 'null').join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x) ?? 'null'}`).join(',')}}`;
}

/** `sha256:<hex>` of the canonical JSON of a tool call's input. */
export function inputHash(input: unknown): string {
  return `sha256:${createHash('sha256')
    .update(canonicalJson(input) ?? '')
    .digest('hex')}`;
}

/** What an approval is bound to. */
export interface CallBinding {
  tool: string;
  callId: string;
  inputHash: string;
}

/** True only when `approval` was made for exactly this call: same tool, same call id, same input. */
export function bindingMatches(approval: CallBinding, call: { tool: string; callId: string; input: unknown }): boolean {
  return approval.tool === call.tool && approval.callId === call.callId && approval.inputHash === inputHash(call.input);
}

export const AUTO_APPROVE_SCOPES = ['session', 'permanent'] as const;
export type AutoApproveScope = (typeof AUTO_APPROVE_SCOPES)[number];

/** An auto-approve rule: calls of `tool` by `agentId` (matching `match`, if set) run without a prompt. */
export interface AutoApproveRule {
  id: string;
  workspace: string;
  agentId: string;
  tool: string;
  match: Record<string, string> | null;
  scope: AutoApproveScope;
  /** The session a `session` rule is limited to; null for `permanent`. */
  sessionId: string | null;
  createdBy: string | null;
  createdMs: number;
}

/** The first rule that covers a call, or null. */
export function coveringRule(
  rules: readonly AutoApproveRule[],
  call: { agentId: string; sessionId: string; tool: string; input: unknown },
): AutoApproveRule | null {
  for (const r of rules) {
    if (r.agentId !== call.agentId || (r.tool !== '*' && r.tool !== call.tool)) continue;
    if (r.scope === 'session' && r.sessionId !== call.sessionId) continue;
    if (argumentsMatch(r.match, call.input)) return r;
  }
  return null;
}
