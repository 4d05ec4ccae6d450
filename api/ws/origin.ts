/**
 * Cross-site WebSocket hijacking defence. Any web page can open a WebSocket to any
 * host, and browsers then always send `Origin`; other clients usually send none. A present
 * `Origin` must be in the allowed list, or — when the list is empty — be the server's own host.
 */
export function originAllowed(origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (allowed.length > 0) return allowed.includes(url.origin);
  if (host === undefined || host === '') return false;
  try {
    // Normalised the same way (case, default port of the origin's scheme).
    return url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}
