/**
 * One shard of a run: sampled (shard i holds samples [i*K, (i+1)*K), and
 * sample k always has seed seed + k, so any process makes the same bytes)
 * and written (PNGs and/or the shard's .npz, each file atomically).
 */
import { join } from 'node:path';

import { toUint8Batch, type UInt8Batch } from '../image/from-tensor.js';
import { encodePng } from '../image/png-encode.js';
import { syncDir, writeBytesAtomic } from '../io/atomic.js';
import { writeNpz } from '../io/npz.js';
import { PNG_DIR, pngFileName, shardArrays, shardFileName, shardPlan, shardRange } from '../io/shards.js';
import { sample } from '../sampling/sample.js';
import { RANGE, type Run } from './load-run.js';
import { MASK64 } from './flags.js';
import type { Flags } from './run-flags.js';

/** Gray to RGB by repeating the channel (for --rgb). */
function toRgb(batch: UInt8Batch): UInt8Batch {
  if (batch.channels !== 1) return batch;
  const data = new Uint8Array(batch.data.length * 3);
  for (let i = 0; i < batch.data.length; i++) data.fill(batch.data[i]!, i * 3, i * 3 + 3);
  return { ...batch, channels: 3, data };
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Writes shard `i`'s files: PNGs first (then their directory is synced), the shard .npz last. */
export async function writeShard(
  flags: Pick<Flags, 'out' | 'format' | 'count'>,
  i: number,
  first: number,
  batch: UInt8Batch,
  labels: (number | null)[] | undefined,
): Promise<void> {
  if (flags.format !== 'npz') {
    const size = batch.height * batch.width * batch.channels;
    const pngDir = join(flags.out, PNG_DIR);
    await inParallel(
      Array.from({ length: batch.count }, (_, k) => k),
      16,
      (k) =>
        writeBytesAtomic(
          join(pngDir, pngFileName(first + k, flags.count)),
          encodePng({ width: batch.width, height: batch.height, channels: batch.channels, data: batch.data.subarray(k * size, (k + 1) * size) }),
          { syncDir: false },
        ),
    );
    await syncDir(pngDir);
  }
  if (flags.format !== 'png') await writeNpz(join(flags.out, shardFileName(i)), shardArrays(batch, labels));
}

/**
 * Samples shard `i`: its images as 8-bit (3 channels with --rgb) and its
 * labels. Shard i's sample k has seed seed + first + k, as in one
 * uninterrupted run, so any process makes the same bytes. `onProgress` gets
 * the images of the shard made so far, counting fractions of the batch in flight.
 */
export async function makeShard(
  run: Run,
  flags: Flags,
  i: number,
  options: { signal: AbortSignal; onProgress?: (made: number) => void },
): Promise<{ batch: UInt8Batch; labels: (number | null)[] | undefined }> {
  const { first, n } = shardRange(shardPlan(flags.count, flags.shardSize), i);
  const result = await sample({
    ...run.base,
    guidance: run.strategies,
    count: n,
    seed: (flags.seed + BigInt(first)) & MASK64,
    signal: options.signal,
    onProgress: (p) => {
      const inBatch = Math.min(flags.batchSize, n - p.done);
      options.onProgress?.(p.done + (inBatch * p.step) / p.steps);
    },
  });
  let batch: UInt8Batch;
  try {
    batch = await toUint8Batch(result.images, { range: RANGE });
  } finally {
    result.images.dispose();
  }
  return { batch: flags.rgb ? toRgb(batch) : batch, labels: run.withLabels ? result.labels : undefined };
}

