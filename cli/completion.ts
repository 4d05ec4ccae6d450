/**
 * Shell completion: `director completion bash|zsh|fish` prints a script that asks the CLI itself
 * (`director __complete -- WORDS...`) for candidates, so completion always matches the commands
 * and options this version has, and offers live sandbox and network ids from the server.
 */
import type { Command, Option } from 'commander';
import { FORMATS } from './output.ts';

export type IdKind = 'sandbox' | 'network' | 'session' | 'workflow';
export type IdLister = (kind: IdKind) => Promise<string[]>;

export const SHELLS = ['bash', 'zsh', 'fish'] as const;

const BASH = `# director shell completion (bash). Load with: source <(director completion bash)
_director_complete() {
  local IFS=$'\\n'
  COMPREPLY=($(director __complete -- "\${COMP_WORDS[@]:1:$COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _director_complete director
`;

const SCRIPTS: Record<(typeof SHELLS)[number], string> = {
  bash: BASH,
  zsh: `# director shell completion (zsh). Load with: source <(director completion zsh)
autoload -U +X bashcompinit && bashcompinit
${BASH.split('\n').slice(1).join('\n')}`,
  fish: `# director shell completion (fish). Load with: director completion fish | source
complete -c director -f -a '(director __complete -- (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`,
};

export const completionScript = (shell: (typeof SHELLS)[number]): string => SCRIPTS[shell];

const chain = (cmd: Command): Command[] => {
  const out: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) out.push(c);
  return out;
};

const findOption = (cmd: Command, flag: string): Option | undefined => {
  const name = flag.split('=')[0];
  for (const c of chain(cmd)) {
    const o = c.options.find((opt) => opt.long === name || opt.short === name);
    if (o) return o;
  }
  return undefined;
};

const visible = (cmd: Command) => cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);

/** What the first operand of `cmd` names: the ids of its area (`sandbox`, `network`, `session`, `workflow`). */
function idKindOf(cmd: Command): IdKind | null {
  const first = cmd.registeredArguments[0]?.name();
  const top = chain(cmd).at(-2)?.name();
  if (!first || !['id', 'network'].includes(first)) return null;
  return top === 'sandbox' || top === 'network' || top === 'session' || top === 'workflow' ? top : null;
}

/** Candidates for the last of `words` (the one being typed), given the words before it. */
export async function complete(program: Command, words: string[], listIds: IdLister): Promise<string[]> {
  const partial = words.at(-1) ?? '';
  const prior = words.slice(0, -1);
  let cmd = program;
  let operands = 0;
  for (let i = 0; i < prior.length; i++) {
    const w = prior[i]!;
    // After `--` come the sandbox command's own words: nothing of ours to offer.
    if (w === '--') return [];
    if (w.startsWith('-')) {
      const o = findOption(cmd, w);
      if (o && (o.required || o.optional) && !w.includes('=')) i++;
      continue;
    }
    const sub = operands === 0 ? cmd.commands.find((c) => c.name() === w || c.aliases().includes(w)) : undefined;
    if (sub) cmd = sub;
    else operands++;
  }
  const starts = (c: string[]) => c.filter((s) => s.startsWith(partial));
  const prev = prior.at(-1);
  const prevOpt = prev?.startsWith('-') ? findOption(cmd, prev) : undefined;
  if (prevOpt && (prevOpt.required || prevOpt.optional)) {
    if (prevOpt.long === '--output') return starts([...FORMATS]);
    if (prevOpt.long === '--shell') return starts(['sh', 'bash']);
    if (prevOpt.long === '--sandbox') return starts(await listIds('sandbox'));
    if (prevOpt.long === '--network' && chain(cmd).some((c) => c.name() === 'events')) return starts(await listIds('network'));
    if (prevOpt.argChoices) return starts(prevOpt.argChoices);
    return [];
  }
  if (partial.startsWith('-')) {
    const flags = chain(cmd).flatMap((c) => c.options.map((o) => o.long).filter((l): l is string => Boolean(l)));
    return starts([...new Set([...flags, '--help'])]);
  }
  if (operands === 0 && visible(cmd).length) return starts(visible(cmd).map((c) => c.name()));
  if (cmd.name() === 'completion') return starts([...SHELLS]);
  if (cmd.name() === 'cp') {
    // Either side may be ID:PATH; anything not started as an id is a local path (the shell completes files).
    return operands < 2 && partial.startsWith('sbx') ? starts((await listIds('sandbox')).map((id) => `${id}:`)) : [];
  }
  const kind = operands === 0 || cmd.registeredArguments[0]?.variadic ? idKindOf(cmd) : null;
  return kind ? starts(await listIds(kind)) : [];
}
