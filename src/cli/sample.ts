/**
 * `torch-guidance sample`: guided sampling from the command line, as a
 * resumable batch job. The run is split into shards of --shard-size samples;
 * shard i holds samples [i*K, (i+1)*K), and sample k always has seed
 * seed + k (src/samplers/seeds.ts), so a shard made after a kill is
 * byte-identical to the same shard of an uninterrupted run. Files are written
 * atomically; the layout and its checks are in src/io/shards.ts.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../errors.js';
import { Denoiser } from '../guidance/denoiser.js';
import type { Strategy } from '../guidance/types.js';
import { toUint8Batch, type UInt8Batch } from '../image/from-tensor.js';
import { encodePng } from '../image/png.js';
import { syncDir, writeBytesAtomic } from '../io/atomic.js';
import { writeNpz } from '../io/npz.js';
import {
  type ImageGeometry,
  type Manifest,
  type OutputFormat,
  MANIFEST,
  MERGED,
  PNG_DIR,
  checkMerged,
  checkShard,
  cleanTemps,
  isDirectory,
  mergeShards,
  newManifest,
  pngFileName,
  readManifest,
  runFilesIn,
  settingsDiff,
  shardArrays,
  shardFileName,
  shardPlan,
  shardRange,
  takeLock,
  writeManifest,
} from '../io/shards.js';
import { type Model, loadModel } from '../model.js';
import { runtimeInfo } from '../runtime.js';
import { explain, sample, type SampleOptions } from '../sample.js';
import { samplerSchema, type SamplerOptions } from '../samplers/samplers.js';
import type { DeviceName } from '../tensor.js';
import { buildStrategy, parseGuidanceSpec, parseSamplerFlags, parseScheduleFlag, strategyNames, type ParsedGuidance } from './guidance-flags.js';
import { Progress, formatDuration } from './progress.js';
import { UsageError } from './usage-error.js';

/** Breaks `text` at spaces into lines of at most `width` characters. */
function wrap(text: string, width: number, joiner: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join(joiner);
}

export const sampleHelp = `Usage: torch-guidance sample [options]

Samples --count images with a stack of guidance strategies and writes them to
--out as shards: shard-NNNNN.npz (uint8 NHWC under arr_0, int64 labels under
arr_1, -1 for unconditional; what FID evaluators such as guided-diffusion's
read) and/or one PNG per sample in png/, and, once every shard exists, all of
them merged into samples.npz. Every file is written atomically. Rerun the same
command after a kill or Ctrl-C and it resumes: finished shards are checked
and kept, a partial one is redone, and the result equals an uninterrupted
run byte for byte. Different settings on an existing --out are refused.

Options:
  --model PATH         denoiser (default models/fashion-unet.pt)
  --guide PATH         second model: the weak guide of autoguidance, and the
                       SIMS negative unless --sims is given
  --sims PATH          the SIMS negative, when it differs from --guide
  --guidance SPEC      a strategy; repeat to stack them (default: unguided).
                       name:value sets its scale (phi for rescale), key=value
                       pairs set its options, sigmaMin/sigmaMax its window,
                       a.b=value a field of an object option, '+' separates
                       list items:
                         cfg:3   pag:scale=3,sites=mid.*   cfg:2,sigmaMax=5
                         sag:0.75,sites=mid.attn+up.1.attn   autoguidance:2
                         slg:3,blocks=mid.*,steps.start=0,steps.end=0.5
                       strategies: ${wrap(strategyNames.join(', '), 45, '\n                                   ')}
  --sampler SPEC       euler (default), heun, ddim, euler_ancestral, dpmpp_2m,
                       with options: heun:churn=40, ddim:eta=0.5
  --steps N            sampler steps (default 30)
  --schedule SPEC      karras (default), exponential, discrete; karras:rho=5,
                       discrete:spacing=leading
  --clip=LOW,HIGH      clip each guided denoised estimate to this range
                       (default -1,1, the shipped models' data range; none:
                       off; write it with '=': --clip=-2,2)
  --count N            samples (default 16)
  --label L            class of every sample: a number, random (default: one
                       per sample, drawn from its seed) or null (unconditional)
  --seed S             seed of sample 0; sample k uses S + k (default 0)
  --batch-size B       samples per forward batch (default 16)
  --shard-size K       samples per shard file (default: the first multiple of
                       --batch-size from 1000)
  --device NAME        auto (default), cpu, cuda, cuda:N
  --out DIR            output directory (default samples)
  --format F           png (default), npz or both
  --rgb                store grayscale samples as 3 equal channels (the
                       guided-diffusion evaluator reads [N, H, W, 3])

Progress goes to stderr: one updating line with images/s and ETA on a
terminal, one line per shard otherwise. Ctrl-C stops after the current step;
rerun the same command to resume. Exit codes: 0 done, 1 error (code printed;
ERR_ABORTED when interrupted), 2 bad flag or settings that do not match --out.

Examples:
  torch-guidance sample --guidance cfg:3 --count 64 --out out/cfg3
  torch-guidance sample --guidance cfg:2 --guidance pag:scale=3,sites=mid.* \\
      --sampler heun --steps 20 --label 7 --count 16 --out out/coats
  torch-guidance sample --guide models/fashion-unet-weak.pt --guidance autoguidance:2 \\
      --count 50000 --batch-size 250 --format npz --rgb --out out/fid-ag2
  torch-guidance sample --model models/fixtures/tiny-unet.pt --steps 4 --count 8 --out /tmp/tiny`;

const MASK64 = (1n << 64n) - 1n;
const RANGE: [number, number] = [-1, 1];

function intFlag(flag: string, raw: string, min: number, max: number): number {
  const value = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} ${raw}: must be a whole number from ${min} to ${max.toLocaleString('en')}`);
  }
  return value;
}

function seedFlag(raw: string): bigint {
  const text = raw.trim();
  if (!/^\d+$/.test(text) || BigInt(text) > MASK64) throw new UsageError(`--seed ${raw}: must be a whole number from 0 to 2^64 - 1`);
  return BigInt(text);
}

function labelFlag(raw: string): number | null | 'random' {
  const text = raw.trim();
  if (text === 'random') return 'random';
  if (text === 'null' || text === 'none') return null;
  if (/^\d+$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
  throw new UsageError(`--label ${raw}: must be a class number, random or null`);
}

function clipFlag(raw: string): [number, number] | null {
  if (raw.trim() === 'none') return null;
  const parts = raw.split(',').map((s) => Number(s.trim()));
  if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p)) || !(parts[1]! > parts[0]!)) {
    throw new UsageError(`--clip ${raw}: must be LOW,HIGH with LOW < HIGH (e.g. -1,1), or none`);
  }
  return [parts[0]!, parts[1]!];
}

function deviceFlag(raw: string): DeviceName {
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(raw)) throw new UsageError(`--device ${raw}: must be auto, cpu, cuda or cuda:N`);
  return raw as DeviceName;
}

function formatFlag(raw: string): OutputFormat {
  if (raw !== 'png' && raw !== 'npz' && raw !== 'both') throw new UsageError(`--format ${raw}: must be png, npz or both`);
  return raw;
}

async function modelFile(flag: string, path: string): Promise<{ path: string; sha256: string }> {
  const absolute = resolve(path);
  try {
    await access(absolute, constants.R_OK);
  } catch {
    throw new UsageError(`${flag} ${path}: no readable file there`);
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(absolute)) hash.update(chunk as Buffer);
  return { path: absolute, sha256: hash.digest('hex') };
}

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

/** The command line, checked flag by flag (nothing loaded, nothing written). */
interface Flags {
  argv: string[];
  /** --out as given (for messages) and resolved. */
  outArg: string;
  out: string;
  model: { arg: string; path: string; sha256: string };
  guide?: { arg: string; path: string; sha256: string };
  sims?: { arg: string; path: string; sha256: string };
  specs: ParsedGuidance[];
  sampler: SamplerOptions;
  /** The sampler flags as given, to name them in messages. */
  samplerFlags: string;
  count: number;
  batchSize: number;
  shardSize: number;
  seed: bigint;
  label: number | null | 'random';
  clip: [number, number] | null;
  device: DeviceName;
  format: OutputFormat;
  rgb: boolean;
}

async function readFlags(argv: string[]): Promise<Flags> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string', default: 'models/fashion-unet.pt' },
      guide: { type: 'string' },
      sims: { type: 'string' },
      guidance: { type: 'string', multiple: true, default: [] },
      sampler: { type: 'string', default: 'euler' },
      steps: { type: 'string', default: '30' },
      schedule: { type: 'string', default: 'karras' },
      clip: { type: 'string', default: '-1,1' },
      count: { type: 'string', default: '16' },
      label: { type: 'string', default: 'random' },
      seed: { type: 'string', default: '0' },
      'batch-size': { type: 'string', default: '16' },
      'shard-size': { type: 'string' },
      device: { type: 'string', default: 'auto' },
      out: { type: 'string', default: 'samples' },
      format: { type: 'string', default: 'png' },
      rgb: { type: 'boolean', default: false },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (options start with --)`);
  const count = intFlag('--count', values.count, 1, 1_000_000_000);
  const batchSize = intFlag('--batch-size', values['batch-size'], 1, 65_536);
  const shardSize =
    values['shard-size'] === undefined ? batchSize * Math.ceil(1000 / batchSize) : intFlag('--shard-size', values['shard-size'], 1, 1_000_000_000);
  const steps = intFlag('--steps', values.steps, 1, 10_000);
  const seed = seedFlag(values.seed);
  const label = labelFlag(values.label);
  const clip = clipFlag(values.clip);
  const device = deviceFlag(values.device);
  const format = formatFlag(values.format);
  if (values.out.trim() === '') throw new UsageError('--out: give a directory');
  const sampler = parseSamplerFlags(values.sampler, steps, parseScheduleFlag(values.schedule));
  const specs = values.guidance.map(parseGuidanceSpec);
  if (values.guide !== undefined && !specs.some((s) => s.name === 'autoguidance' || (s.name === 'sims' && values.sims === undefined))) {
    throw new UsageError(`--guide ${values.guide}: no --guidance autoguidance or sims uses it`);
  }
  if (values.sims !== undefined && !specs.some((s) => s.name === 'sims')) throw new UsageError(`--sims ${values.sims}: no --guidance sims uses it`);
  for (const s of specs.filter((spec) => spec.needsGuide)) {
    if ((s.name === 'sims' ? (values.sims ?? values.guide) : values.guide) === undefined) {
      throw new UsageError(`--guidance ${s.spec}: ${s.name} needs a second model; give it with --guide <model.pt>`);
    }
  }
  const file = async (flag: string, arg: string | undefined) => (arg === undefined ? undefined : { arg, ...(await modelFile(flag, arg)) });
  const out = resolve(values.out);
  if (await isDirectory(out)) {
    const manifest = await readManifest(out).catch((error: Error) => {
      throw new UsageError(`--out ${values.out}: its ${MANIFEST} cannot be read (${error.message}); choose another directory`);
    });
    if (!manifest && (await runFilesIn(out)).length > 0) {
      throw new UsageError(`--out ${values.out}: holds sample files but no ${MANIFEST}; choose another directory`);
    }
  } else if (await access(out).then(() => true, () => false)) {
    throw new UsageError(`--out ${values.out}: exists and is not a directory`);
  }
  return {
    argv,
    outArg: values.out,
    out,
    model: (await file('--model', values.model))!,
    ...(values.guide !== undefined ? { guide: await file('--guide', values.guide) } : {}),
    ...(values.sims !== undefined ? { sims: await file('--sims', values.sims) } : {}),
    specs,
    sampler,
    samplerFlags: `--sampler ${values.sampler} --steps ${steps} --schedule ${values.schedule}`,
    count,
    batchSize,
    shardSize,
    seed,
    label,
    clip,
    device,
    format,
    rgb: values.rgb,
  };
}

/** The loaded run: models, strategies, the options every shard's sample() shares, and what decides the bytes. */
interface Run {
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
async function loadRun(flags: Flags, signal: AbortSignal, models: Model[]): Promise<Run> {
  const load = async (path: string, device: DeviceName) => {
    const model = await loadModel(path, { device, signal });
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
      shardSize: flags.shardSize,
      format: flags.format,
      rgb: flags.rgb,
      device: main.device,
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

/** Creates --out, takes its lock, and writes the manifest or checks the one there against `settings`. */
async function openOutput(flags: Flags, settings: Record<string, unknown>): Promise<{ manifest: Manifest; release: () => Promise<void> }> {
  await mkdir(flags.out, { recursive: true });
  const lock = await takeLock(flags.out);
  if ('heldBy' in lock) throw new UsageError(`--out ${flags.outArg}: another run (pid ${lock.heldBy}) is writing there`);
  try {
    let manifest = await readManifest(flags.out);
    if (manifest) {
      const diff = settingsDiff(manifest.settings, settings);
      if (diff.length > 0) {
        throw new UsageError(
          `--out ${flags.outArg}: was started with different settings, so it cannot be resumed with these:\n` +
            diff.map((d) => `  ${d.path}: was ${d.was}, now ${d.now}`).join('\n') +
            `\nGive the same flags as before (see ${join(flags.outArg, MANIFEST)}) or choose a new --out.`,
        );
      }
    } else {
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
    return { manifest, release: lock.release };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Writes shard `i`'s files: PNGs first (then their directory is synced), the shard .npz last. */
async function writeShard(flags: Flags, i: number, first: number, batch: UInt8Batch, labels: (number | null)[] | undefined): Promise<void> {
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

export async function sampleCommand(argv: string[]): Promise<void> {
  const flags = await readFlags(argv);
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
    const opened = await openOutput(flags, run.settings);
    release = opened.release;
    const manifest = opened.manifest;

    // What is already there: stale temporaries go, each shard is checked.
    if (format !== 'npz') await mkdir(join(out, PNG_DIR), { recursive: true });
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
    const progress = new Progress({ total: count, already, shards: plan.shards });
    const resumed = already > 0 || removed.length > 0;
    progress.log(
      `sampling ${count} images in ${plan.shards} shard(s) of ${flags.shardSize} into ${outArg} on ${run.main.device}` +
        (resumed ? `; resuming: ${plan.shards - todo.length} shard(s) done${removed.length ? `, ${removed.length} stale temporary file(s) removed` : ''}` : ''),
    );
    for (const problem of partial) progress.log(`redoing partial ${problem}`);

    // The missing shards, in order. Shard i's sample k has seed seed + first + k,
    // as in one uninterrupted run.
    for (const i of todo) {
      if (controller.signal.aborted) break;
      const { first, n } = shardRange(plan, i);
      const madeBefore = progress.made;
      let result;
      try {
        result = await sample({
          ...run.base,
          guidance: run.strategies,
          count: n,
          seed: (flags.seed + BigInt(first)) & MASK64,
          signal: controller.signal,
          onProgress: (p) => {
            const inBatch = Math.min(flags.batchSize, n - p.done);
            progress.update(madeBefore + p.done + (inBatch * p.step) / p.steps, i);
          },
        });
      } catch (error) {
        if (controller.signal.aborted) break;
        throw error;
      }
      let batch: UInt8Batch;
      try {
        batch = await toUint8Batch(result.images, { range: RANGE });
      } finally {
        result.images.dispose();
      }
      await writeShard(flags, i, first, flags.rgb ? toRgb(batch) : batch, withLabels ? result.labels : undefined);
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
