/**
 * The Director Protocol's `verifyWebhook` (Director Protocol docs, "Verifying Webhook Signatures"), copied
 * verbatim but for `import` in place of `require` and the parameter types strict TypeScript needs.
 */
import crypto from 'node:crypto';

export function verifyWebhook(payload: unknown, signature: string, secret: string) {
  const hmac = crypto.createHmac('sha256', secret);
  const digest = hmac.update(JSON.stringify(payload)).digest('hex');
  return crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(`sha256=${digest}`));
}
