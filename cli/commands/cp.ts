/**
 * `director sandbox cp SRC DST`, one side `ID:PATH`, as `docker cp` does it: a file or a whole
 * directory, modes kept. Into the sandbox, DST names the copy (a trailing `/` puts it inside that
 * directory, which must exist); out of the sandbox, an existing local directory receives the
 * copy under its own name, otherwise DST becomes the copy.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import { serialize } from '../output.ts';
import { extractTo, isDirectory, packPath } from '../tar.ts';

const REMOTE = /^(sbx_[A-Za-z0-9_-]{16}):(.*)$/;

export interface CopyPlan {
  direction: 'in' | 'out';
  sandboxId: string;
  remote: string;
  local: string;
}

/** Which side is the sandbox's, from the two operands. */
export function planCopy(src: string, dst: string): CopyPlan {
  const s = REMOTE.exec(src);
  const d = REMOTE.exec(dst);
  if (s && d) throw new UsageError('cp copies between this machine and one sandbox: only one side may be ID:PATH');
  if (!s && !d) throw new UsageError('cp needs one side as ID:PATH (e.g. sbx_0123456789abcdef:/workspace/file)');
  const [, sandboxId, remote] = (s ?? d)!;
  if (!remote!.startsWith('/')) throw new UsageError(`the sandbox path must be absolute (got "${remote}")`);
  return { direction: s ? 'out' : 'in', sandboxId: sandboxId!, remote: remote!, local: s ? dst : src };
}

export function registerCp(sandbox: Command, ctx: Context): void {
  sandbox
    .command('cp')
    .description('Copy files or directories between this machine and a sandbox (one side ID:PATH)')
    .argument('<src>', 'local path, or ID:PATH in the sandbox')
    .argument('<dst>', 'ID:PATH in the sandbox, or local path')
    .addHelpText(
      'after',
      '\nExamples:\n  director sandbox cp ./app sbx_...:/workspace/app\n  director sandbox cp report.txt sbx_...:/workspace/\n  director sandbox cp sbx_...:/workspace/out ./out',
    )
    .action(async (src: string, dst: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const plan = planCopy(src, dst);
      const files = ctx.client(g).sandboxes.ref(plan.sandboxId).files;
      let summary: { direction: string; sandboxId: string; remote: string; local: string; files: number; bytes: number };
      if (plan.direction === 'in') {
        if (!existsSync(plan.local)) throw new CliError('NOT_FOUND', `${plan.local} does not exist`);
        const target = plan.remote.endsWith('/') ? path.posix.join(plan.remote, path.basename(path.resolve(plan.local))) : plan.remote;
        const parent = path.posix.dirname(target);
        const packed = await packPath(plan.local, path.posix.basename(target));
        for (const s of packed.skipped) ctx.note(`director: skipped ${s} (not a regular file or directory)`);
        await ctx.progress(`Copying ${plan.local} to ${plan.sandboxId}:${target}`, () => files.uploadTar(parent, packed.tar));
        summary = { ...plan, remote: target, files: packed.files, bytes: packed.bytes };
      } else {
        const dest = isDirectory(plan.local) ? path.join(plan.local, path.posix.basename(plan.remote)) : plan.local;
        const got = await ctx.progress(`Copying ${plan.sandboxId}:${plan.remote} to ${dest}`, async () =>
          extractTo(await files.downloadTar(plan.remote), dest),
        );
        // The archive of an existing path holds at least that path; the API answers a missing one with an empty archive.
        if (got.entries === 0) throw new CliError('NOT_FOUND', `nothing at ${plan.remote} in ${plan.sandboxId}`);
        summary = { ...plan, local: dest, files: got.files, bytes: got.bytes };
      }
      if (g.output !== 'table') ctx.out(serialize(g.output, summary));
      else ctx.note(`Copied ${summary.files} file(s), ${summary.bytes} bytes.`);
    });
}
