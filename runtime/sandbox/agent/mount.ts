import path from 'node:path';
import { AGENT_MOUNT, type AgentMount, type ContainerSpec } from '../../engine/engine.ts';

/** Where `images/agent/build.sh` puts the agent, relative to the project root. */
export const AGENT_BUILD_OUTPUT = '.state/agent/director-agent';

export const defaultAgentBinary = (root: string): string => path.resolve(root, AGENT_BUILD_OUTPUT);

/**
 * The container spec with Director's agent as its main process (under the engine's init):
 * `agent serve` keeps the sandbox alive as `sleep infinity` did; with the sandbox's own
 * `command` the agent runs it as its child and exits with its status, so the sandbox still
 * ends when its command ends. The image's entrypoint does not run: a caller that wants it
 * puts it in front of `command`.
 */
export function withAgent(spec: ContainerSpec, mount: AgentMount, command: readonly string[] | null): ContainerSpec {
  return { ...spec, entrypoint: [AGENT_MOUNT.binary, 'serve', '--'], cmd: command ? [...command] : [], agentMount: mount };
}
