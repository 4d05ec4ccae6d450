/**
 * The console's Content-Security-Policy allows `<style>` elements only with the nonce of the
 * response that served the page (see api/routes/console.ts). xterm.js writes cell sizes and
 * its theme into `<style>` elements it creates itself and cannot be given a nonce, so every
 * `<style>` made through this document's `createElement` gets it at creation, before it is
 * inserted (a nonce added later does not count). The nonce is read from the page's own script
 * tag: the browser hides the attribute but keeps the `nonce` property.
 */
export function installStyleNonce(doc: Document): void {
  const nonce = doc.querySelector<HTMLScriptElement>('script[nonce]')?.nonce;
  if (!nonce) return;
  const create: (tag: string, options?: ElementCreationOptions) => HTMLElement = doc.createElement.bind(doc);
  function stamped(tag: string, options?: ElementCreationOptions): HTMLElement {
    const el = create(tag, options);
    if (tag.toLowerCase() === 'style') el.setAttribute('nonce', nonce!);
    return el;
  }
  doc.createElement = stamped;
}
