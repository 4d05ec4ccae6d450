/**
 * Progress for long operations: a spinner with a label on stderr when stderr is a terminal,
 * nothing at all otherwise (pipes, files and CI logs stay clean).
 */
const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 80;

export interface ProgressTarget {
  isTTY?: boolean;
  write(text: string): boolean;
}

export async function withProgress<T>(target: ProgressTarget, label: string, work: () => Promise<T>): Promise<T> {
  if (!target.isTTY) return work();
  let i = 0;
  const draw = () => target.write(`\r\x1b[K${FRAMES[i++ % FRAMES.length]} ${label}`);
  draw();
  const timer = setInterval(draw, FRAME_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    target.write('\r\x1b[K');
  }
}
