/**
 * The HTTP client of bench/chat.ts, in a process of its own as a user's client is: it is forked by
 * the bench and times, over loopback, the requests it is sent (IPC) from just before it writes the
 * request to the arrival of the first chunk containing `marker`. Both Director's first `content`
 * event and the straight-to-the-provider floor are timed here, by the same client and agent.
 * Answers `{ id, startedAt, ms }` (`startedAt` is `performance.timeOrigin + performance.now()`,
 * comparable with the bench process's clock) or `{ id, error }`.
 */
import { Agent, request } from 'node:http';

interface Job {
  id: number;
  url: string;
  headers: Record<string, string>;
  body: string;
  marker: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function timed(job: Job): Promise<{ startedAt: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const u = new URL(job.url);
    const t0 = performance.now();
    const req = request({ host: u.hostname, port: u.port, method: 'POST', path: u.pathname, agent, headers: job.headers }, (res) => {
      let seen = '';
      let at = Number.NaN;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (!Number.isNaN(at)) return;
        seen += d;
        if (seen.includes(job.marker)) at = performance.now();
      });
      res.on('end', () =>
        Number.isNaN(at)
          ? reject(new Error(`no ${job.marker} (status ${res.statusCode}): ${seen.slice(0, 300)}`))
          : resolve({ startedAt: performance.timeOrigin + t0, ms: at - t0 }),
      );
    });
    req.on('error', reject);
    req.end(job.body);
  });
}

process.on('message', (job: Job) => {
  timed(job).then(
    (r) => process.send!({ id: job.id, ...r }),
    (err: unknown) => process.send!({ id: job.id, error: String(err) }),
  );
});
process.on('disconnect', () => {
  agent.destroy();
  process.exit(0);
});
