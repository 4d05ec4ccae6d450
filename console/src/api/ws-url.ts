/** The page's scheme and host (`location` in the browser). */
export interface Origin {
  protocol: string;
  host: string;
}

/** The WebSocket URL of an API path on the page's origin (ws: under http:, wss: under https:). Never carries a token. */
export function wsUrl(path: string, origin: Origin): string {
  return `${origin.protocol === 'https:' ? 'wss:' : 'ws:'}//${origin.host}${path}`;
}
