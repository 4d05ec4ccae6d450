/** An HTTP answer whose body sends `text` and then ends, or breaks as a dropped connection does. */
export function streamedResponse(text: string, drop: boolean, init: ResponseInit = {}): Response {
  let sent = false;
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (!sent) {
          sent = true;
          if (text) return ctl.enqueue(new TextEncoder().encode(text));
        }
        if (drop) ctl.error(new TypeError('terminated'));
        else ctl.close();
      },
    }),
    init,
  );
}
