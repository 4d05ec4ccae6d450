import { createHmac } from 'node:crypto';

/** The Director Protocol's webhook payload. */
export interface WebhookPayload {
  event: string;
  data: Record<string, unknown>;
  /** ISO 8601 time of the event (not of the delivery attempt). */
  timestamp: string;
}

/**
 * The exact bytes sent: `JSON.stringify({event, data, timestamp})`. They are what is signed, and
 * `JSON.stringify(JSON.parse(body)) === body`, so the Director Protocol's `verifyWebhook`, which re-serializes
 * the parsed payload, checks the same bytes.
 */
export const webhookBody = (p: WebhookPayload): string => JSON.stringify({ event: p.event, data: p.data, timestamp: p.timestamp });

/** `sha256=<hex HMAC-SHA256 of body keyed with secret>` (the `X-Director-Signature` header). */
export const signBody = (body: string, secret: string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
