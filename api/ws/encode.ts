import type { ChannelItem } from './channels.ts';
import { BATCH_MAX_ITEMS } from './protocol.ts';

/** One channel item as its JSON text (what a subscriber receives, outside `batch` frames). */
export const encodeItem = (item: ChannelItem): string => JSON.stringify({ type: item.type, data: item.data, cursor: item.cursor });

/** An item encoded once for every socket: its JSON text and, made on first use, its UTF-8 frame. */
export class EncodedItem {
  readonly cursor: number;
  readonly workspace: string | null;
  readonly text: string;
  #frame: Buffer | null = null;

  constructor(item: ChannelItem) {
    this.cursor = item.cursor;
    this.workspace = item.workspace;
    this.text = encodeItem(item);
  }

  get frame(): Buffer {
    return (this.#frame ??= Buffer.from(this.text));
  }
}

/** `batch` frames for `items` (already encoded), at most {@link BATCH_MAX_ITEMS} each. */
export function batchFrames(channel: string, items: readonly EncodedItem[]): Buffer[] {
  const head = `{"type":"batch","channel":${JSON.stringify(channel)},"items":[`;
  const out: Buffer[] = [];
  for (let i = 0; i < items.length; i += BATCH_MAX_ITEMS) {
    const part = items.slice(i, i + BATCH_MAX_ITEMS);
    out.push(Buffer.from(`${head}${part.map((e) => e.text).join(',')}]}`));
  }
  return out;
}
