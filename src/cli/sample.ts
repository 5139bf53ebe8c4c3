/**
 * `torch-guidance sample`: guided sampling from the command line, as a
 * resumable batch job. The run is split into shards of --shard-size samples;
 * shard i holds samples [i*K, (i+1)*K), and sample k always has seed
 * seed + k (src/samplers/seeds.ts), so a shard made after a kill is
 * byte-identical to the same shard of an uninterrupted run. Files are written
 * atomically; the layout and its checks are in src/io/shards.ts; the flags
 * and their checks in sample-flags.ts.
 */
import { join } from 'node:path';

import { autoSplitThreads } from '../core/blas.js';
import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import { Denoiser } from '../guidance/denoiser.js';
import type { Strategy } from '../guidance/types.js';
import { toUint8Batch, type UInt8Batch } from '../image/from-tensor.js';
import { encodePng } from '../image/png.js';
import { syncDir, writeBytesAtomic } from '../io/atomic.js';
import { checkDiskSpace } from '../io/disk-space.js';
import { makeDirectory } from '../core/io-error.js';
import { writeNpz } from '../io/npz.js';
import {
  type ImageGeometry,
  type Manifest,
  MANIFEST,
  MERGED,
  PNG_DIR,
  checkMerged,
  checkShard,
  cleanTemps,
  mergeShards,
  newManifest,
  pngFileName,
  readManifest,
  settingsDiff,
  shardArrays,
  shardFileName,
  shardPlan,
  shardRange,
  takeLock,
  writeManifest,
} from '../io/shards.js';
import { type Model, loadModel } from '../model/model.js';
import { runtimeInfo } from '../core/runtime.js';
import { checkSampleMemory, explain, sample, type SampleOptions } from '../sampling/sample.js';
import { samplerSchema } from '../sampling/samplers/samplers.js';
import type { DeviceName } from '../core/tensor.js';
import { buildStrategy } from '../guidance/spec.js';
import { Progress, formatDuration } from './progress.js';
import { MASK64, readFlags, type Flags } from './sample-flags.js';
import { UsageError } from '../core/usage-error.js';

/** The value range the shipped denoisers' images live in (decoded to 8 bits for the files). */
const RANGE: [number, number] = [-1, 1];

/** JSON-safe, key-sorted form of settings: Infinity as a string, models by role. */
function canonical(value: unknown, models: Map<unknown, string>): unknown {
  if (models.has(value)) return models.get(value);
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof RegExp) return String(value);
  if (Array.isArray(value)) return value.map((v) => canonical(v, models));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonical(v, models);
    }
    return out;
  }
  return value;
}

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

/** TorchGuidanceErrors that mean "these options do not fit this model" (checked before anything is written). */
const OPTION_ERRORS = new Set<string>([
  ErrorCodes.INVALID_OPTION,
  ErrorCodes.INVALID_ARGUMENT,
  ErrorCodes.NO_MATCHING_SITE,
  ErrorCodes.CROSS_ATTENTION,
  ErrorCodes.NO_GRID,
  'ERR_NOT_SKIPPABLE', // slg on a block that cannot be skipped
]);

function asUsage(prefix: string, run: () => void, alsoCodes: readonly string[] = []): void {
  try {
    run();
  } catch (error) {
    if (isTorchGuidanceError(error) && (OPTION_ERRORS.has(error.code) || alsoCodes.includes(error.code))) {
      throw new UsageError(`${prefix}: ${error.message.replace(/^invalid sample options: /, '')}`);
    }
    throw error;
  }
}

/**
 * The settings that depend on where a run samples: the device, and the number
 * of torch threads that --parallel auto splits each forward over (only on the
 * CPU). A queued run records the device kind its workers must have ('cpu' or
 * 'cuda'); a worker compares its own against it (src/queue/loaded-runs.ts).
 */
export function deviceSettings(device: string, parallel: Flags['parallel']): { device: string; parallelThreads: number | null } {
  return { device, parallelThreads: device === 'cpu' && parallel === 'auto' ? autoSplitThreads() : null };
}

/** The loaded run: models, strategies, the options every shard's sample() shares, and what decides the bytes. */
export interface Run {
  main: Model;
  strategies: Strategy[];
  /** sample() options without count, seed and callbacks. */
  base: SampleOptions;
  geometry: ImageGeometry;
  /** Whether samples carry class labels (stored as arr_1). */
  withLabels: boolean;
  /** The manifest's settings: a resume must match them. */
  settings: Record<string, unknown>;
}

/**
 * Loads the models (pushed on `models`, which the caller disposes) and checks
 * the flags against them with explain(): no forward runs, nothing is written.
 */
export async function loadRun(flags: Flags, signal: AbortSignal, models: Model[]): Promise<Run> {
  const load = async (path: string, device: DeviceName) => {
    const model = await loadModel(path, { device, signal, trust: flags.trust });
    models.push(model);
    return model;
  };
  const main = await load(flags.model.path, flags.device);
  const guide = flags.guide && (await load(flags.guide.path, main.device));
  const sims = flags.sims && (await load(flags.sims.path, main.device));
  const strategies = flags.specs.map((s) => buildStrategy(s, s.name === 'sims' ? (sims ?? guide) : guide));

  const denoiser = Denoiser.of(main, 'model');
  const conditioning = denoiser.conditioning;
  if (conditioning.kind === 'tensor') {
    throw new UsageError(`--model ${flags.model.arg}: takes a tensor condition, which the command line cannot give; use sample() from the API`);
  }
  if (flags.label !== 'random' && flags.label !== null) {
    if (conditioning.kind !== 'class') throw new UsageError(`--label ${flags.label}: ${flags.model.arg} is unconditional; leave --label out`);
    if (flags.label >= conditioning.numClasses) {
      throw new UsageError(`--label ${flags.label}: this model's classes are 0..${conditioning.numClasses - 1} (or null)`);
    }
  }
  const [channels, height, width] = denoiser.card.sampleShape as number[];
  if (channels === undefined || height === undefined || width === undefined || ![1, 3, 4].includes(channels)) {
    throw new UsageError(`--model ${flags.model.arg}: its samples are [${denoiser.card.sampleShape.join(', ')}], not images [C, H, W] with C = 1, 3 or 4`);
  }
  const base: SampleOptions = {
    model: main,
    sampler: flags.sampler,
    count: Math.min(flags.count, flags.batchSize),
    label: flags.label,
    batchSize: flags.batchSize,
    parallel: flags.parallel,
    seed: flags.seed,
    ...(flags.clip ? { clipDenoised: flags.clip } : {}),
  };
  // The sampler alone, each strategy alone, then the stack: the first failure names its flag.
  asUsage(flags.samplerFlags, () => explain(base));
  // A card that lacks what a strategy needs (tsg: the time embedding) is a flag problem here: the spec can name the module.
  for (const [i, strategy] of strategies.entries()) {
    asUsage(`--guidance ${flags.specs[i]!.spec}`, () => explain({ ...base, guidance: [strategy] }), [ErrorCodes.MODEL_CARD]);
  }
  asUsage(`--guidance ${flags.specs.map((s) => s.spec).join(' --guidance ')}`, () => explain({ ...base, guidance: strategies }));
  // Each shard is one sample() call: its result and batches must fit the memory limit.
  try {
    checkSampleMemory({ ...base, guidance: strategies, count: Math.min(flags.count, flags.shardSize) });
  } catch (error) {
    if (!isTorchGuidanceError(error, ErrorCodes.OUT_OF_MEMORY)) throw error;
    throw new TorchGuidanceError(
      ErrorCodes.OUT_OF_MEMORY,
      `with --batch-size ${flags.batchSize} and shards of ${flags.shardSize} samples: ${error.message} (The command line's knobs: --batch-size, --shard-size.)`,
    );
  }

  const roles = new Map<unknown, string>([[main, 'model']]);
  if (guide) roles.set(guide, 'guide');
  if (sims) roles.set(sims, 'sims');
  const settings = canonical(
    {
      model: { sha256: flags.model.sha256 },
      guide: flags.guide ? { sha256: flags.guide.sha256 } : null,
      sims: flags.sims ? { sha256: flags.sims.sha256 } : null,
      guidance: strategies.map((s) => ({ name: s.name, settings: s.settings })),
      sampler: samplerSchema.parse(flags.sampler),
      clip: flags.clip,
      count: flags.count,
      label: flags.label,
      seed: flags.seed,
      batchSize: flags.batchSize,
      // The split changes samples at round-off level; a resumed run keeps it.
      // 'auto' splits by the number of torch threads (autoChunks in
      // src/batch-split.ts; TORCH_GUIDANCE_JOB_THREADS sets it, a pinned BLAS
      // thread count may lower it, see splitThreads; CUDA never splits), so
      // that number is stored too: a resume in an environment that would
      // split otherwise is refused, not silently different.
      parallel: flags.parallel,
      shardSize: flags.shardSize,
      format: flags.format,
      rgb: flags.rgb,
      ...deviceSettings(main.device, flags.parallel),
      range: RANGE,
    },
    roles,
  ) as Record<string, unknown>;
  return {
    main,
    strategies,
    base,
    geometry: { height, width, channels: flags.rgb && channels === 1 ? 3 : channels },
    withLabels: conditioning.kind === 'class',
    settings,
  };
}

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
async function checkOutputSpace(flags: Flags, bytes: number): Promise<void> {
  await checkDiskSpace(flags.out, bytes, `--count ${flags.count} in --format ${flags.format}`, 'free space, choose another --out, or ask for fewer samples');
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

export async function sampleCommand(argv: string[]): Promise<void> {
  const flags = await readFlags(argv);
  if (flags.queue) {
    // Imported on demand: runs without a queue never load the queue's client.
    const { sampleOnQueue } = await import('./sample-queue.js');
    return sampleOnQueue({ ...flags, queue: flags.queue });
  }
  const { out, outArg, format, count } = flags;

  // Ctrl-C / SIGTERM: stop after the current step; a second one exits at once
  // (files are written atomically, so that is safe too).
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${signal}: stopping after the current step (again to quit at once); rerun the same command to resume.\n`);
    controller.abort(new TorchGuidanceError(ErrorCodes.ABORTED, `interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const models: Model[] = [];
  let release: (() => Promise<void>) | undefined;
  try {
    const run = await loadRun(flags, controller.signal, models);
    const { geometry, withLabels } = run;
    const perSample = bytesPerSample(format, geometry);
    const opened = await openOutput(flags, run.settings, perSample);
    release = opened.release;
    const manifest = opened.manifest;

    // What is already there: stale temporaries go, each shard is checked.
    if (format !== 'npz') await makeDirectory(join(out, PNG_DIR));
    const removed = await cleanTemps(out);
    const plan = shardPlan(count, flags.shardSize);
    const todo: number[] = [];
    const partial: string[] = [];
    for (let i = 0; i < plan.shards; i++) {
      const state = await checkShard(out, plan, i, format, geometry, withLabels);
      if (state.status !== 'complete') todo.push(i);
      if (state.status === 'partial') partial.push(`shard ${i + 1}: ${state.problem}`);
    }
    const already = count - todo.reduce((sum, i) => sum + shardRange(plan, i).n, 0);
    await checkOutputSpace(flags, (count - already) * perSample);
    const progress = new Progress({ total: count, already, shards: plan.shards });
    const resumed = already > 0 || removed.length > 0;
    progress.log(
      `sampling ${count} images in ${plan.shards} shard(s) of ${flags.shardSize} into ${outArg} on ${run.main.device}` +
        (opened.grewFrom === undefined ? '' : `; growing the run from ${opened.grewFrom} images`) +
        (resumed ? `; resuming: ${plan.shards - todo.length} shard(s) done${removed.length ? `, ${removed.length} stale temporary file(s) removed` : ''}` : ''),
    );
    for (const problem of partial) progress.log(`redoing partial ${problem}`);

    // The missing shards, in order. Shard i's sample k has seed seed + first + k,
    // as in one uninterrupted run.
    for (const i of todo) {
      if (controller.signal.aborted) break;
      const { first, n } = shardRange(plan, i);
      const madeBefore = progress.made;
      let shard;
      try {
        shard = await makeShard(run, flags, i, { signal: controller.signal, onProgress: (made) => progress.update(madeBefore + made, i) });
      } catch (error) {
        if (controller.signal.aborted) break;
        throw error;
      }
      await writeShard(flags, i, first, shard.batch, shard.labels);
      progress.shardDone(i, first, n);
    }
    if (controller.signal.aborted) {
      progress.finish();
      const states = await Promise.all(Array.from({ length: plan.shards }, (_, i) => checkShard(out, plan, i, format, geometry, withLabels)));
      const done = states.filter((state) => state.status === 'complete').length;
      throw new TorchGuidanceError(ErrorCodes.ABORTED, `interrupted: ${done} of ${plan.shards} shard(s) are complete in ${outArg}; rerun the same command to resume.`);
    }

    // The merged file, once every shard exists.
    const merge = format !== 'png' && (todo.length > 0 || (await checkMerged(out, plan, geometry, withLabels)) !== undefined);
    if (merge) await mergeShards(out, plan, geometry, withLabels);
    progress.finish();
    if (!manifest.completedAt) {
      manifest.completedAt = new Date().toISOString();
      await writeManifest(out, manifest);
    }
    const seconds = progress.elapsedSeconds();
    const made = progress.made;
    const shape = `[${count}, ${geometry.height}, ${geometry.width}, ${geometry.channels}]`;
    const what = [
      format !== 'png' ? `${MERGED} (arr_0 uint8 ${shape}${withLabels ? ', arr_1 labels' : ''}) and ${plan.shards} shard(s)` : '',
      format !== 'npz' ? `${count} PNGs in ${PNG_DIR}/` : '',
    ]
      .filter(Boolean)
      .join(', ');
    console.log(
      made === 0
        ? `${outArg} ${merge ? `is complete (${MERGED} rewritten from the shards)` : 'is already complete'}: ${what}.`
        : `wrote ${what} to ${outArg}: ${made} image(s) made in ${formatDuration(seconds)} (${(made / seconds).toFixed(2)} images/s)` +
            (already > 0 ? `, ${already} kept from before` : '') +
            '.',
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await release?.();
    for (const m of models) m.dispose();
  }
}
