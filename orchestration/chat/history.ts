import type { ModelMessage } from 'ai';

/**
 * The part of an agent's history sent with each model call: the newest `max` messages at most,
 * starting at a user message. A tool call is never separated from its result, nor an assistant
 * turn from the user message it answers (a window that starts at a `tool` or `assistant` message
 * is refused by providers, or confuses the model): the window's start moves forward to the first
 * `user` message in it. The newest user message (the one being answered) is always in it. Older
 * messages stay stored and listed (`GET /v1/sessions/{id}/messages`); they are only not sent.
 */
export function historyWindow(messages: readonly ModelMessage[], max: number): ModelMessage[] {
  if (messages.length <= max) return [...messages];
  let start = messages.length - max;
  while (start < messages.length && messages[start]!.role !== 'user') start++;
  if (start === messages.length) {
    // No user message in the newest `max` (one turn with more tool rounds than that): from the last one.
    start = messages.length - 1;
    while (start > 0 && messages[start]!.role !== 'user') start--;
  }
  return messages.slice(start);
}
