import { Type, type Static } from 'typebox';
import { compileSchema } from '../../core/validate.ts';

/** `POST /v1/chat` (the Denkeeper seed's body, with the Director Protocol's camelCase). */
export const ChatRequestSchema = Type.Object(
  {
    agent: Type.String({
      minLength: 1,
      maxLength: 128,
      description: "An agent's id (`agt_…`), or its name (unique within a session; give `sessionId` when several sessions have one)",
    }),
    sessionId: Type.Optional(
      Type.String({
        pattern: '^ses_[A-Za-z0-9_-]{16}$',
        description: "The agent's session (an agent chats in the session of its department); default: that session",
      }),
    ),
    message: Type.String({ minLength: 1, maxLength: 65_536 }),
  },
  { additionalProperties: false },
);
export type ChatRequest = Static<typeof ChatRequestSchema>;

/** {@link ChatRequestSchema} compiled once: `send` checks every request against it. */
export const ChatRequestCheck = compileSchema(ChatRequestSchema);
