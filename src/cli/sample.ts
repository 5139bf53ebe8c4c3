/**
 * `torch-guidance sample`: guided sampling from the command line, as a
 * resumable batch job. The run is split into shards of --shard-size samples;
 * shard i holds samples [i*K, (i+1)*K), and sample k always has seed
 * seed + k (src/core/seeds.ts), so a shard made after a kill is
 * byte-identical to the same shard of an uninterrupted run. The run itself
 * (its flags, models, folder and shards) is in src/runs/, which the queue's
 * workers share; the folder's layout and checks are in src/io/shards.ts.
 */
import { join } from 'node:path';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { makeDirectory } from '../core/io-error.js';
import { strategyNames } from '../guidance/spec.js';
import {
  type ImageGeometry,
  type ShardPlan,
  MERGED,
  PNG_DIR,
  checkMerged,
  checkShard,
  cleanTemps,
  mergeShards,
  shardPlan,
  shardRange,
  writeManifest,
} from '../io/shards.js';
import type { Model } from '../model/model.js';
import { deviceFlag, modelFlags, outFlag, queueFlags, seedFlag, stepsFlag, trustFlag, wrap } from '../runs/flags.js';
import { type Run, loadRun } from '../runs/load-run.js';
import { SAMPLE_DEFAULTS, readFlags, type Flags } from '../runs/run-flags.js';
import { bytesPerSample, checkOutputSpace, openOutput } from '../runs/run-output.js';
import { makeShard, writeShard } from '../runs/shard-files.js';
import { Progress, formatDuration } from './progress.js';
import { untilInterrupted } from './signals.js';

/** The column where the help's option texts start. */
const COLUMN = 23;

/** The command's --help text. */
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
${modelFlags.help('model', COLUMN, "denoiser (default the package's models/fashion-unet.pt)")}
${modelFlags.help('guide', COLUMN, 'second model: the weak guide of autoguidance, and the SIMS negative unless --sims is given')}
${modelFlags.help('sims', COLUMN, 'the SIMS negative, when it differs from --guide')}
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
${stepsFlag.help(COLUMN, SAMPLE_DEFAULTS.steps)}
  --schedule SPEC      karras (default), exponential, polyexponential, vp,
                       discrete; karras:rho=5, discrete:spacing=leading
  --clip=LOW,HIGH      clip each guided denoised estimate to this range
                       (default -1,1, the shipped models' data range; none:
                       off; write it with '=': --clip=-2,2)
  --count N            samples (default 16); a finished or interrupted run
                       grows to a larger --count (its shards are kept)
  --label L            class of every sample: a number, random (default: one
                       per sample, drawn from its seed) or null (unconditional)
${seedFlag.help(COLUMN)}
  --batch-size B       samples per forward batch (default 16)
  --parallel K         CPU: run each forward batch as up to K chunks, one per
                       torch thread at a time; auto (default): chunks of 4-12
                       samples; 1 = one forward per batch
  --shard-size K       samples per shard file (default: the first multiple of
                       --batch-size from 1000)
${deviceFlag.help(COLUMN)}
${outFlag.help(COLUMN, `output directory (default ${SAMPLE_DEFAULTS.out})`)}
${trustFlag.help(COLUMN)}
  --format F           png (default), npz or both
  --rgb                store grayscale samples as 3 equal channels (the
                       guided-diffusion evaluator reads [N, H, W, 3])
${queueFlags.help(
  COLUMN,
  'redis://HOST:PORT/DB: coordinate the run over a queue instead of sampling here. One job per unfinished shard; ' +
    "'torch-guidance worker' processes sample them into --out (a folder every worker sees at the same path). " +
    "Shows the whole run's progress, merges when all shards are in; rerun to resume. --device names the workers' " +
    'device kind (cpu or cuda). See docs/distributed.md',
)}

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

/** Runs `torch-guidance sample` with `argv`: here, or as the coordinator of a queue (--queue). */
export async function sampleCommand(argv: string[]): Promise<void> {
  const flags = await readFlags(argv);
  if (flags.queue) {
    // Imported on demand: runs without a queue never load the queue's client.
    const { sampleOnQueue } = await import('./sample-queue.js');
    return sampleOnQueue({ ...flags, queue: flags.queue });
  }
  // Ctrl-C / SIGTERM: stop after the current step; a second one exits at once
  // (files are written atomically, so that is safe too).
  return untilInterrupted(
    (signal) => sampleHere(flags, signal),
    (signal) => process.stderr.write(`\n${signal}: stopping after the current step (again to quit at once); rerun the same command to resume.\n`),
  );
}

/** What is already in --out: the shards still to make, and the partial ones among them. */
interface Survey {
  plan: ShardPlan;
  todo: number[];
  partial: string[];
  /** Stale temporary files removed. */
  removed: string[];
  /** Samples in complete shards. */
  already: number;
}

/** Removes stale temporaries and checks each shard of the run's folder. */
async function survey(flags: Flags, run: Run): Promise<Survey> {
  const { out, format, count } = flags;
  if (format !== 'npz') await makeDirectory(join(out, PNG_DIR));
  const removed = await cleanTemps(out);
  const plan = shardPlan(count, flags.shardSize);
  const todo: number[] = [];
  const partial: string[] = [];
  for (let i = 0; i < plan.shards; i++) {
    const state = await checkShard(out, plan, i, format, run.geometry, run.withLabels);
    if (state.status !== 'complete') todo.push(i);
    if (state.status === 'partial') partial.push(`shard ${i + 1}: ${state.problem}`);
  }
  const already = count - todo.reduce((sum, i) => sum + shardRange(plan, i).n, 0);
  return { plan, todo, partial, removed, already };
}

/** The run's first log line: how much, where, and what a resume keeps. */
function startLine(flags: Flags, run: Run, found: Survey, grewFrom: number | undefined): string {
  const { plan, todo, removed } = found;
  const resumed = found.already > 0 || removed.length > 0;
  return (
    `sampling ${flags.count} images in ${plan.shards} shard(s) of ${flags.shardSize} into ${flags.outArg} on ${run.main.device}` +
    (grewFrom === undefined ? '' : `; growing the run from ${grewFrom} images`) +
    (resumed ? `; resuming: ${plan.shards - todo.length} shard(s) done${removed.length ? `, ${removed.length} stale temporary file(s) removed` : ''}` : '')
  );
}

/**
 * Makes and writes the missing shards, in order; stops early when `signal`
 * fires. Shard i's sample k has seed seed + first + k, as in one
 * uninterrupted run.
 */
async function makeMissing(run: Run, flags: Flags, found: Survey, progress: Progress, signal: AbortSignal): Promise<void> {
  for (const i of found.todo) {
    if (signal.aborted) return;
    const { first, n } = shardRange(found.plan, i);
    const madeBefore = progress.made;
    let shard;
    try {
      shard = await makeShard(run, flags, i, { signal, onProgress: (made) => progress.update(madeBefore + made, i) });
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
    await writeShard(flags, i, first, shard.batch, shard.labels);
    progress.shardDone(i, first, n);
  }
}

/** The error an interrupted run ends with: how many shards are complete, and how to resume. */
async function interrupted(flags: Flags, plan: ShardPlan, run: Run): Promise<TorchGuidanceError> {
  const states = await Promise.all(
    Array.from({ length: plan.shards }, (_, i) => checkShard(flags.out, plan, i, flags.format, run.geometry, run.withLabels)),
  );
  const done = states.filter((state) => state.status === 'complete').length;
  return new TorchGuidanceError(ErrorCodes.ABORTED, `interrupted: ${done} of ${plan.shards} shard(s) are complete in ${flags.outArg}; rerun the same command to resume.`);
}

/** What the run's folder holds, in words. */
function contents(flags: Flags, plan: ShardPlan, geometry: ImageGeometry, withLabels: boolean): string {
  const shape = `[${flags.count}, ${geometry.height}, ${geometry.width}, ${geometry.channels}]`;
  return [
    flags.format !== 'png' ? `${MERGED} (arr_0 uint8 ${shape}${withLabels ? ', arr_1 labels' : ''}) and ${plan.shards} shard(s)` : '',
    flags.format !== 'npz' ? `${flags.count} PNGs in ${PNG_DIR}/` : '',
  ]
    .filter(Boolean)
    .join(', ');
}

/** Samples the run of `flags` in this process, resuming whatever --out holds. */
async function sampleHere(flags: Flags, signal: AbortSignal): Promise<void> {
  const models: Model[] = [];
  let release: (() => Promise<void>) | undefined;
  try {
    const run = await loadRun(flags, signal, models);
    const perSample = bytesPerSample(flags.format, run.geometry);
    const opened = await openOutput(flags, run.settings, perSample);
    release = opened.release;
    const found = await survey(flags, run);
    await checkOutputSpace(flags, (flags.count - found.already) * perSample);
    const progress = new Progress({ total: flags.count, already: found.already, shards: found.plan.shards });
    progress.log(startLine(flags, run, found, opened.grewFrom));
    for (const problem of found.partial) progress.log(`redoing partial ${problem}`);
    await makeMissing(run, flags, found, progress, signal);
    if (signal.aborted) {
      progress.finish();
      throw await interrupted(flags, found.plan, run);
    }
    // The merged file, once every shard exists.
    const { plan } = found;
    const merge =
      flags.format !== 'png' && (found.todo.length > 0 || (await checkMerged(flags.out, plan, run.geometry, run.withLabels)) !== undefined);
    if (merge) await mergeShards(flags.out, plan, run.geometry, run.withLabels);
    progress.finish();
    if (!opened.manifest.completedAt) {
      opened.manifest.completedAt = new Date().toISOString();
      await writeManifest(flags.out, opened.manifest);
    }
    const seconds = progress.elapsedSeconds();
    const made = progress.made;
    const what = contents(flags, plan, run.geometry, run.withLabels);
    console.log(
      made === 0
        ? `${flags.outArg} ${merge ? `is complete (${MERGED} rewritten from the shards)` : 'is already complete'}: ${what}.`
        : `wrote ${what} to ${flags.outArg}: ${made} image(s) made in ${formatDuration(seconds)} (${(made / seconds).toFixed(2)} images/s)` +
            (found.already > 0 ? `, ${found.already} kept from before` : '') +
            '.',
    );
  } finally {
    await release?.();
    for (const m of models) m.dispose();
  }
}
