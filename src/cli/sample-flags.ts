/**
 * The flags of `torch-guidance sample`, checked one by one before anything
 * is loaded or written: each bad flag is a UsageError naming it. Also the
 * command's --help text.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, readdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { tempTarget } from '../io/atomic.js';
import { type OutputFormat, LOCK, MANIFEST, isDirectory, readManifest } from '../io/shards.js';
import { DEFAULT_QUEUE_NAME, queueNameProblem, queueUrlProblem } from '../queue/connection.js';
import type { SamplerOptions } from '../sampling/samplers/samplers.js';
import type { DeviceName } from '../core/tensor.js';
import { parseGuidanceSpec, strategyNames, type ParsedGuidance } from '../guidance/spec.js';
import { parseSamplerSpec, parseScheduleSpec } from '../sampling/sampler-spec.js';
import { intFlag } from './int-flag.js';
import { trustFlag, trustHelp, trustLevel } from './trust-flag.js';
import { UsageError } from '../core/usage-error.js';
import { shippedModel } from './package-paths.js';

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
  --model PATH         denoiser (default the package's models/fashion-unet.pt)
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
                         slg:3,blocks=mid.*,start=0,stop=0.5
                       strategies: ${wrap(strategyNames.join(', '), 45, '\n                                   ')}
  --sampler SPEC       euler (default), heun, ddim, euler_ancestral, dpmpp_2m,
                       dpm_2, dpm_2_ancestral, dpmpp_2s_ancestral, dpmpp_sde,
                       dpmpp_2m_sde, dpmpp_3m_sde, lms, with options:
                       heun:churn=40, ddim:eta=0.5, dpmpp_sde:sNoise=1.1
  --steps N            sampler steps (default 30)
  --schedule SPEC      karras (default), exponential, polyexponential, vp,
                       discrete; karras:rho=5, discrete:spacing=leading
  --clip=LOW,HIGH      clip each guided denoised estimate to this range
                       (default -1,1, the shipped models' data range; none:
                       off; write it with '=': --clip=-2,2)
  --count N            samples (default 16); a finished or interrupted run
                       grows to a larger --count (its shards are kept)
  --label L            class of every sample: a number, random (default: one
                       per sample, drawn from its seed) or null (unconditional)
  --seed S             seed of sample 0; sample k uses S + k (default 0)
  --batch-size B       samples per forward batch (default 16)
  --parallel K         CPU: run each forward batch as up to K chunks, one per
                       torch thread at a time; auto (default): chunks of 4-12
                       samples; 1 = one forward per batch
  --shard-size K       samples per shard file (default: the first multiple of
                       --batch-size from 1000)
  --device NAME        auto (default), cpu, cuda, cuda:N
  --out DIR            output directory (default samples)
${trustHelp(23)}
  --format F           png (default), npz or both
  --rgb                store grayscale samples as 3 equal channels (the
                       guided-diffusion evaluator reads [N, H, W, 3])
  --queue URL          redis://HOST:PORT/DB: coordinate the run over a queue
                       instead of sampling here. One job per unfinished shard;
                       'torch-guidance worker' processes sample them into
                       --out (a folder every worker sees at the same path).
                       Shows the whole run's progress, merges when all shards
                       are in; rerun to resume. --device names the workers'
                       device kind (cpu or cuda). See docs/distributed.md
  --queue-name NAME    the queue's name on that Redis (default ${DEFAULT_QUEUE_NAME})

Progress goes to stderr: one updating line with images/s and ETA on a
terminal, one line per shard otherwise. Ctrl-C stops after the current step;
rerun the same command to resume, or with a larger --count to add samples.
Exit codes: 0 done, 1 error (code printed; ERR_ABORTED when interrupted),
2 bad flag or settings that do not match --out.

Examples:
  torch-guidance sample --guidance cfg:3 --count 64 --out out/cfg3
  torch-guidance sample --guidance cfg:2 --guidance pag:scale=3,sites=mid.* \\
      --sampler heun --steps 20 --label 7 --count 16 --out out/coats
  torch-guidance sample --guide models/fashion-unet-weak.pt --guidance autoguidance:2 \\
      --count 50000 --batch-size 250 --format npz --rgb --out out/fid-ag2
  torch-guidance sample --model models/fixtures/tiny-unet.pt --steps 4 --count 8 --out /tmp/tiny`;

/** Seeds are unsigned 64-bit; per-sample seeds wrap modulo 2^64. */
export const MASK64 = (1n << 64n) - 1n;

function parallelFlag(raw: string): number | 'auto' {
  if (raw.trim() === 'auto') return 'auto';
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || Number(raw) > 4096) {
    throw new UsageError(`--parallel ${raw}: give auto, or a whole number of chunks from 1 to 4096 (1: no split)`);
  }
  return Number(raw);
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
  // Hashing a FIFO would wait for a writer forever: regular files only.
  if (!(await stat(absolute)).isFile()) throw new UsageError(`${flag} ${path}: not a regular file (a model is a .pt file on disk)`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(absolute)) hash.update(chunk as Buffer);
  return { path: absolute, sha256: hash.digest('hex') };
}

/** The command line, checked flag by flag (nothing loaded, nothing written). */
export interface Flags {
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

export async function readFlags(argv: string[]): Promise<Flags> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string', default: shippedModel('fashion-unet.pt') },
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
      parallel: { type: 'string', default: 'auto' },
      'shard-size': { type: 'string' },
      device: { type: 'string', default: 'auto' },
      out: { type: 'string', default: 'samples' },
      format: { type: 'string', default: 'png' },
      rgb: { type: 'boolean', default: false },
      ...trustFlag,
      queue: { type: 'string' },
      'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (options start with --)`);
  const count = intFlag('--count', values.count, 1, 1_000_000_000);
  const batchSize = intFlag('--batch-size', values['batch-size'], 1, 65_536);
  const parallel = parallelFlag(values.parallel);
  const shardSize =
    values['shard-size'] === undefined ? batchSize * Math.ceil(1000 / batchSize) : intFlag('--shard-size', values['shard-size'], 1, 1_000_000_000);
  const steps = intFlag('--steps', values.steps, 1, 10_000);
  const seed = seedFlag(values.seed);
  const label = labelFlag(values.label);
  const clip = clipFlag(values.clip);
  const device = deviceFlag(values.device);
  const format = formatFlag(values.format);
  if (values.out.trim() === '') throw new UsageError('--out: give a directory');
  const queueProblem = values.queue === undefined ? undefined : queueUrlProblem(values.queue);
  if (queueProblem) throw new UsageError(`--queue ${values.queue}: ${queueProblem}`);
  const nameProblem = queueNameProblem(values['queue-name']);
  if (nameProblem) throw new UsageError(`--queue-name ${values['queue-name']}: ${nameProblem}`);
  const sampler = parseSamplerSpec(values.sampler, steps, parseScheduleSpec(values.schedule));
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
    // A directory without our manifest is someone else's: write nothing into
    // it (only an empty one, or one a killed run left before its manifest).
    const foreign = manifest ? [] : (await readdir(out)).filter((name) => name !== LOCK && tempTarget(name) !== MANIFEST);
    if (foreign.length > 0) {
      const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, ... (${foreign.length} entries)` : '');
      throw new UsageError(
        `--out ${values.out}: is not empty (${shown}) and holds no torch-guidance run (no ${MANIFEST}); choose a new or empty directory`,
      );
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
    trust: trustLevel(values.trust),
    ...(values.queue !== undefined ? { queue: { url: values.queue, name: values['queue-name'] } } : {}),
  };
}
