import type { ChatEvent, ChatEventLog } from '../../orchestration/chat/events.ts';
import type { ChannelDefinition, ChannelItem } from './channels.ts';

/**
 * The `chat` channel (scope `chat`): every chat event of the caller's workspace, as
 * `chat_<type>` (`chat_content`, `chat_thinking`, `chat_tool_start`, `chat_tool_approval`,
 * `chat_tool_end`, `chat_usage`, `chat_done`, `chat_error`) with the SSE event's data plus
 * `sessionId`, `turnId` and `agentId`; a client follows one session by its `sessionId`. The
 * cursor is the SSE id, so `subscribe {channel: 'chat', after}` resumes where a stream stopped.
 */
export function chatChannel(log: ChatEventLog): ChannelDefinition {
  const toItem = (e: ChatEvent): ChannelItem => ({
    cursor: e.seq,
    workspace: e.workspace,
    type: `chat_${e.type}`,
    data: { sessionId: e.sessionId, turnId: e.turnId, agentId: e.agentId, ...e.data },
  });
  return {
    scope: 'chat',
    source: {
      subscribe: (listener) => log.subscribe((e) => listener(toItem(e))),
      page(workspace, after, limit) {
        const rows = log.ofWorkspace(workspace, after, limit);
        return { items: rows.map(toItem), cursor: rows.at(-1)?.seq ?? after, done: rows.length < limit };
      },
      head: () => log.head(),
    },
  };
}
