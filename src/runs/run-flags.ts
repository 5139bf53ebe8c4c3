/**
 * A sampling run's settings as the flags of `torch-guidance sample`, checked
 * one by one before anything is loaded or written: each bad flag is a
 * UsageError naming it. The flags are also the form a queued run travels in
 * (src/queue/run-spec.ts): the coordinator and every worker read a run with
 * this same readFlags(). The command's help text is in src/cli/sample.ts.
 */
import { access, readdir } from 'node:fs/promises';
import { resolve } from 'node:path';

import type { DeviceName } from '../core/tensor.js';
import { UsageError } from '../core/usage-error.js';
import { parseGuidanceSpec, type ParsedGuidance } from '../guidance/spec.js';
import { tempTarget } from '../io/atomic.js';
import { type OutputFormat, LOCK, MANIFEST, isDirectory, readManifest } from '../io/shards.js';
import { parseSamplerSpec, parseScheduleSpec } from '../sampling/sampler-spec.js';
import type { SamplerOptions } from '../sampling/samplers/samplers.js';
import {
  type ModelFile,
  deviceFlag,
  intFlag,
  modelFile,
  modelFlags,
  outFlag,
  parseFlags,
  queueFlags,
  seedFlag,
  stepsFlag,
  trustFlag,
} from './flags.js';

/** The defaults of the flags only `sample` takes (the shared ones are in flags.ts). */
export const SAMPLE_DEFAULTS = { steps: 30, out: 'samples', count: 16, batchSize: 16 } as const;

/** The parseArgs options of `sample`. */
const sampleOptions = {
  ...modelFlags.option,
  guidance: { type: 'string', multiple: true, default: [] as string[] },
  sampler: { type: 'string', default: 'euler' },
  ...stepsFlag.option(SAMPLE_DEFAULTS.steps),
  schedule: { type: 'string', default: 'karras' },
  clip: { type: 'string', default: '-1,1' },
  count: { type: 'string', default: String(SAMPLE_DEFAULTS.count) },
  label: { type: 'string', default: 'random' },
  ...seedFlag.option,
  'batch-size': { type: 'string', default: String(SAMPLE_DEFAULTS.batchSize) },
  parallel: { type: 'string', default: 'auto' },
  'shard-size': { type: 'string' },
  ...deviceFlag.option,
  ...outFlag.option(SAMPLE_DEFAULTS.out),
  format: { type: 'string', default: 'png' },
  rgb: { type: 'boolean', default: false },
  ...trustFlag.option,
  ...queueFlags.option,
} as const;

function parallelFlag(raw: string): number | 'auto' {
  if (raw.trim() === 'auto') return 'auto';
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || Number(raw) > 4096) {
    throw new UsageError(`--parallel ${raw}: give auto, or a whole number of chunks from 1 to 4096 (1: no split)`);
  }
  return Number(raw);
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

function formatFlag(raw: string): OutputFormat {
  if (raw !== 'png' && raw !== 'npz' && raw !== 'both') throw new UsageError(`--format ${raw}: must be png, npz or both`);
  return raw;
}

/** The command line, checked flag by flag (nothing loaded, nothing written). */
export interface Flags {
  argv: string[];
  /** --out as given (for messages) and resolved. */
  outArg: string;
  out: string;
  model: ModelFile;
  guide?: ModelFile;
  sims?: ModelFile;
  specs: ParsedGuidance[];
  sampler: SamplerOptions;
  /** The sampler flags as given, to name them in messages. */
  samplerFlags: string;
  /** The same as an argv (--sampler, --steps, --schedule), to hand the run to another process. */
  samplerArgv: string[];
  count: number;
  batchSize: number;
  parallel: number | 'auto';
  shardSize: number;
  seed: bigint;
  label: number | null | 'random';
  clip: [number, number] | null;
  device: DeviceName;
  format: OutputFormat;
  rgb: boolean;
  /** loadModel's trust for every model of the run (--trust). */
  trust: 'full' | 'scan';
  /** --queue: coordinate the run over this queue instead of sampling here. */
  queue?: { url: string; name: string };
}

/** --guide and --sims against the strategies: each is given exactly when a strategy takes it. */
function checkSecondModels(specs: readonly ParsedGuidance[], guide: string | undefined, sims: string | undefined): void {
  if (guide !== undefined && !specs.some((s) => s.name === 'autoguidance' || (s.name === 'sims' && sims === undefined))) {
    throw new UsageError(`--guide ${guide}: no --guidance autoguidance or sims uses it`);
  }
  if (sims !== undefined && !specs.some((s) => s.name === 'sims')) throw new UsageError(`--sims ${sims}: no --guidance sims uses it`);
  for (const s of specs.filter((spec) => spec.needsGuide)) {
    if ((s.name === 'sims' ? (sims ?? guide) : guide) === undefined) {
      throw new UsageError(`--guidance ${s.spec}: ${s.name} needs a second model; give it with --guide <model.pt>`);
    }
  }
}

/**
 * Refuses an --out that holds something other than a run of this package:
 * a file, or a folder with entries but no manifest (only an empty one, or one
 * a killed run left before its manifest, may be started in).
 */
async function checkOutFolder(out: string, outArg: string): Promise<void> {
  if (!(await isDirectory(out))) {
    if (await access(out).then(() => true, () => false)) throw new UsageError(`--out ${outArg}: exists and is not a directory`);
    return;
  }
  const manifest = await readManifest(out).catch((error: Error) => {
    throw new UsageError(`--out ${outArg}: its ${MANIFEST} cannot be read (${error.message}); choose another directory`);
  });
  const foreign = manifest ? [] : (await readdir(out)).filter((name) => name !== LOCK && tempTarget(name) !== MANIFEST);
  if (foreign.length > 0) {
    const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, ... (${foreign.length} entries)` : '');
    throw new UsageError(`--out ${outArg}: is not empty (${shown}) and holds no torch-guidance run (no ${MANIFEST}); choose a new or empty directory`);
  }
}

/** Reads and checks `sample`'s flags; resolves and hashes the model files, and looks at --out (writing nothing). */
export async function readFlags(argv: string[]): Promise<Flags> {
  const { values } = parseFlags(argv, sampleOptions);
  const count = intFlag('--count', values.count, 1, 1_000_000_000);
  const batchSize = intFlag('--batch-size', values['batch-size'], 1, 65_536);
  const parallel = parallelFlag(values.parallel);
  const shardSize =
    values['shard-size'] === undefined ? batchSize * Math.ceil(1000 / batchSize) : intFlag('--shard-size', values['shard-size'], 1, 1_000_000_000);
  const steps = stepsFlag.read(values.steps);
  const seed = seedFlag.read(values.seed);
  const label = labelFlag(values.label);
  const clip = clipFlag(values.clip);
  const device = deviceFlag.read(values.device);
  const format = formatFlag(values.format);
  const outArg = outFlag.read(values.out);
  const queue = queueFlags.read(values.queue, values['queue-name']);
  const sampler = parseSamplerSpec(values.sampler, steps, parseScheduleSpec(values.schedule));
  const specs = values.guidance.map(parseGuidanceSpec);
  checkSecondModels(specs, values.guide, values.sims);
  const out = resolve(outArg);
  await checkOutFolder(out, outArg);
  return {
    argv,
    outArg,
    out,
    model: await modelFile('model', modelFlags.path('model', values.model)),
    ...(values.guide !== undefined ? { guide: await modelFile('guide', values.guide) } : {}),
    ...(values.sims !== undefined ? { sims: await modelFile('sims', values.sims) } : {}),
    specs,
    sampler,
    samplerFlags: `--sampler ${values.sampler} --steps ${steps} --schedule ${values.schedule}`,
    samplerArgv: ['--sampler', values.sampler, '--steps', String(steps), '--schedule', values.schedule],
    count,
    batchSize,
    parallel,
    shardSize,
    seed,
    label,
    clip,
    device,
    format,
    rgb: values.rgb,
    trust: trustFlag.read(values.trust),
    ...(queue ? { queue } : {}),
  };
}
