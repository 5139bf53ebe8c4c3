/**
 * A run's folder (--out) before any shard is made: its lock, and its manifest
 * written, or checked against the run's settings (a resume must match them;
 * a larger --count grows the run), with the free space the run needs.
 * The folder's layout and checks are in src/io/shards.ts.
 */
import { join } from 'node:path';

import { makeDirectory } from '../core/io-error.js';
import { runtimeInfo } from '../core/runtime.js';
import { UsageError } from '../core/usage-error.js';
import { checkDiskSpace } from '../io/disk-space.js';
import { type ImageGeometry, type Manifest, MANIFEST, newManifest, readManifest, settingsDiff, takeLock, writeManifest } from '../io/shards.js';
import type { Flags } from './run-flags.js';

/**
 * Creates --out, takes its lock, and writes the manifest or checks the one
 * there against `settings`. A run may grow: with every other setting equal, a
 * larger --count keeps the finished shards (sample k depends only on its seed
 * and the shard layout, which --count does not change) and returns the old
 * count as `grewFrom`; the manifest is updated before any new shard is made.
 */
export async function openOutput(
  flags: Flags,
  settings: Record<string, unknown>,
  bytesPerSample: number,
): Promise<{ manifest: Manifest; release: () => Promise<void>; grewFrom?: number }> {
  await makeDirectory(flags.out);
  const lock = await takeLock(flags.out);
  if ('heldBy' in lock) {
    throw new UsageError(`--out ${flags.outArg}: another run (${lock.heldBy > 0 ? `pid ${lock.heldBy}` : 'just starting'}) is writing there`);
  }
  try {
    let manifest = await readManifest(flags.out);
    let grewFrom: number | undefined;
    if (manifest) {
      const diff = settingsDiff(manifest.settings, settings);
      const was = manifest.settings.count;
      if (diff.length === 1 && diff[0]!.path === 'count' && typeof was === 'number') {
        if (flags.count < was) {
          throw new UsageError(
            `--count ${flags.count}: ${flags.outArg} was started with --count ${was}, and a run can grow but not shrink. ` +
              `Give --count ${was} (or more), or choose a new --out; the first ${flags.count} samples of the run are its first ${flags.count} PNGs and shard rows.`,
          );
        }
        grewFrom = was;
        await checkOutputSpace(flags, (flags.count - was) * bytesPerSample);
        manifest.settings.count = flags.count;
        delete manifest.completedAt;
        manifest.info = { ...manifest.info, grown: [...((manifest.info?.grown as unknown[]) ?? []), { from: was, to: flags.count, at: new Date().toISOString() }] };
        await writeManifest(flags.out, manifest);
      } else if (diff.length > 0) {
        throw new UsageError(
          `--out ${flags.outArg}: was started with different settings, so it cannot be resumed with these:\n` +
            diff.map((d) => `  ${d.path}: was ${d.was}, now ${d.now}`).join('\n') +
            `\nGive the same flags as before (see ${join(flags.outArg, MANIFEST)}) or choose a new --out.`,
        );
      }
    } else {
      await checkOutputSpace(flags, flags.count * bytesPerSample);
      manifest = newManifest(settings);
      // For diagnosis only (not compared): CPU kernels may round differently under another libtorch or thread count.
      const runtime = runtimeInfo();
      manifest.info = {
        argv: flags.argv,
        model: flags.model.path,
        guide: flags.guide?.path ?? null,
        sims: flags.sims?.path ?? null,
        torch: runtime.torchVersion,
        intraOpThreads: runtime.intraOpThreads,
      };
      await writeManifest(flags.out, manifest);
    }
    return { manifest, release: lock.release, ...(grewFrom === undefined ? {} : { grewFrom }) };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Disk bytes one sample takes in `format`: a shard row and its copy in samples.npz, and/or a PNG (at most its raw bytes and headers). */
export function bytesPerSample(format: Flags['format'], geometry: ImageGeometry): number {
  const pixels = geometry.height * geometry.width * geometry.channels;
  return (format !== 'png' ? 2 * (pixels + 8) : 0) + (format !== 'npz' ? pixels + geometry.height + 128 : 0);
}

/** Refuses (ERR_IO) to start writing `bytes` more than --out's device has free. */
export async function checkOutputSpace(flags: Flags, bytes: number): Promise<void> {
  await checkDiskSpace(flags.out, bytes, `--count ${flags.count} in --format ${flags.format}`, 'free space, choose another --out, or ask for fewer samples');
}

