/**
 * A sampling run as the `sample` command and the queue's workers load it:
 * its models, its strategies built from their specs, the sample() options
 * every shard shares, and the settings that decide its bytes (stored in the
 * run's manifest, and compared on every resume and by every worker). The
 * flags are checked against the models with explain() before anything is
 * written.
 */
import { autoSplitThreads } from '../core/blas.js';
import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import type { DeviceName } from '../core/tensor.js';
import { UsageError } from '../core/usage-error.js';
import { Denoiser } from '../guidance/denoiser.js';
import { buildStrategy } from '../guidance/spec.js';
import type { Strategy } from '../guidance/types.js';
import type { ImageGeometry } from '../io/shards.js';
import { type Model, loadModel } from '../model/model.js';
import { explain } from '../sampling/explain.js';
import type { SampleOptions } from '../sampling/sample-options.js';
import { checkSampleMemory } from '../sampling/sample-prepare.js';
import { samplerSchema } from '../sampling/samplers/samplers.js';
import type { Flags } from './run-flags.js';

/** The value range the shipped denoisers' images live in (decoded to 8 bits for the files). */
export const RANGE: [number, number] = [-1, 1];

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

/** TorchGuidanceErrors that mean "these options do not fit this model" (checked before anything is written). */
const OPTION_ERRORS = new Set<string>([
  ErrorCodes.INVALID_OPTION,
  ErrorCodes.INVALID_ARGUMENT,
  ErrorCodes.NO_MATCHING_SITE,
  ErrorCodes.CROSS_ATTENTION,
  ErrorCodes.NO_GRID,
  'ERR_NOT_SKIPPABLE', // slg on a block that cannot be skipped
]);

/** Runs `run`; an option error it throws becomes a UsageError prefixed with the flags at fault. */
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

/** The run's models by role: the main one, and the second models its strategies take. */
interface RunModels {
  main: Model;
  guide?: Model | undefined;
  sims?: Model | undefined;
}

/** Loads the run's models onto the main model's device, pushing each on `models` (which the caller disposes). */
async function loadModels(flags: Flags, signal: AbortSignal, models: Model[]): Promise<RunModels> {
  const load = async (path: string, device: DeviceName) => {
    const model = await loadModel(path, { device, signal, trust: flags.trust });
    models.push(model);
    return model;
  };
  const main = await load(flags.model.path, flags.device);
  const guide = flags.guide && (await load(flags.guide.path, main.device));
  const sims = flags.sims && (await load(flags.sims.path, main.device));
  return { main, guide, sims };
}

/**
 * Checks that the main model makes images the command line can label and
 * store: no tensor condition, a --label among its classes, samples [C, H, W]
 * with 1, 3 or 4 channels. Returns the files' image geometry.
 */
function imageModel(flags: Flags, denoiser: Denoiser): { geometry: ImageGeometry; withLabels: boolean } {
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
  return { geometry: { height, width, channels: flags.rgb && channels === 1 ? 3 : channels }, withLabels: conditioning.kind === 'class' };
}

/**
 * Plans the run with explain() (no forward runs): the sampler alone, each
 * strategy alone, then the stack, so that the first failure names its flag;
 * then the memory one shard's sample() call needs.
 */
function checkPlan(flags: Flags, base: SampleOptions, strategies: Strategy[]): void {
  asUsage(flags.samplerFlags, () => explain(base));
  // A card that lacks what a strategy needs (tsg: the time embedding) is a flag problem here: the spec can name the module.
  for (const [i, strategy] of strategies.entries()) {
    asUsage(`--guidance ${flags.specs[i]!.spec}`, () => explain({ ...base, guidance: [strategy] }), [ErrorCodes.MODEL_CARD]);
  }
  asUsage(`--guidance ${flags.specs.map((s) => s.spec).join(' --guidance ')}`, () => explain({ ...base, guidance: strategies }));
  try {
    checkSampleMemory({ ...base, guidance: strategies, count: Math.min(flags.count, flags.shardSize) });
  } catch (error) {
    if (!isTorchGuidanceError(error, ErrorCodes.OUT_OF_MEMORY)) throw error;
    throw new TorchGuidanceError(
      ErrorCodes.OUT_OF_MEMORY,
      `with --batch-size ${flags.batchSize} and shards of ${flags.shardSize} samples: ${error.message} (The command line's knobs: --batch-size, --shard-size.)`,
    );
  }
}

/** The settings that decide a run's bytes, in the manifest's canonical form (models by role and hash). */
function runSettings(flags: Flags, models: RunModels, strategies: Strategy[]): Record<string, unknown> {
  const roles = new Map<unknown, string>([[models.main, 'model']]);
  if (models.guide) roles.set(models.guide, 'guide');
  if (models.sims) roles.set(models.sims, 'sims');
  return canonical(
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
      // src/model/batch-split.ts; TORCH_GUIDANCE_JOB_THREADS sets it, a pinned
      // BLAS thread count may lower it, see splitThreads; CUDA never splits),
      // so that number is stored too: a resume in an environment that would
      // split otherwise is refused, not silently different.
      parallel: flags.parallel,
      shardSize: flags.shardSize,
      format: flags.format,
      rgb: flags.rgb,
      ...deviceSettings(models.main.device, flags.parallel),
      range: RANGE,
    },
    roles,
  ) as Record<string, unknown>;
}

/**
 * Loads the models (pushed on `models`, which the caller disposes) and checks
 * the flags against them with explain(): no forward runs, nothing is written.
 */
export async function loadRun(flags: Flags, signal: AbortSignal, models: Model[]): Promise<Run> {
  const loaded = await loadModels(flags, signal, models);
  const { main, guide, sims } = loaded;
  const strategies = flags.specs.map((s) => buildStrategy(s, s.name === 'sims' ? (sims ?? guide) : guide));
  const { geometry, withLabels } = imageModel(flags, Denoiser.of(main, 'model'));
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
  checkPlan(flags, base, strategies);
  return { main, strategies, base, geometry, withLabels, settings: runSettings(flags, loaded, strategies) };
}
