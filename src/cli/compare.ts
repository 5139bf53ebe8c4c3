/**
 * `torch-guidance compare`: the same seeds and classes sampled with every
 * guidance method, as one labelled picture and a Markdown report (settings,
 * forwards, time, and how many samples the evaluation classifier labels as
 * the requested class). The package's main job (`npm start`).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';

import { runtimeInfo } from '../core/runtime.js';
import type { DeviceName, Tensor } from '../core/tensor.js';
import { UsageError } from '../core/usage-error.js';
import { labelledRows, toImages, writePng, type LabelledRow } from '../image/index.js';
import { writeBytesAtomic } from '../io/atomic.js';
import { classifierAgreement } from '../metrics/classifier-agreement.js';
import { loadModel, type Model } from '../model/model.js';
import { deviceFlag, intFlag, modelFlags, outFlag, parseFlags, seedFlag, stepsFlag, trustFlag } from '../runs/flags.js';
import { parseSamplerSpec, parseScheduleSpec } from '../sampling/sampler-spec.js';
import { explain } from '../sampling/explain.js';
import { sample } from '../sampling/sample.js';
import type { SamplerOptions } from '../sampling/samplers/samplers.js';
import { compareRows, describeSettings, type CompareModels } from './compare-rows.js';

/** The column where the help's option texts start. */
const COLUMN = 22;
/** Sampler steps when --steps is not given. */
const DEFAULT_STEPS = 20;

/** The command's --help text. */
export const compareHelp = `Usage: torch-guidance compare [options]

Samples the same seeds and classes with no guidance, CFG, PAG, SEG, SAG,
autoguidance, SIMS, ICG, TSG, SLG, CFG + PAG and unconditional rows, and writes one
labelled picture (<out>/compare.png) and a report (<out>/compare.md) with each
row's settings, forward count, time and classifier agreement.

Options:
${modelFlags.help('model', COLUMN, "main model (default the package's models/fashion-unet.pt)")}
${modelFlags.help('guide', COLUMN, "weak model for autoguidance (default the package's models/fashion-unet-weak.pt; row left out if missing)")}
${modelFlags.help('sims', COLUMN, "SIMS negative (default the package's models/fashion-unet-sims.pt; row left out if missing)")}
${modelFlags.help('classifier', COLUMN, "evaluation classifier (default the package's models/fashion-classifier.pt; column left out if missing)")}
${deviceFlag.help(COLUMN)}
  --sampler SPEC      euler (default), heun, ddim, euler_ancestral, dpmpp_2m,
                      ... as in 'torch-guidance sample' (heun:churn=40)
${stepsFlag.help(COLUMN, DEFAULT_STEPS)}
${seedFlag.help(COLUMN)}
  --per-class N       samples per class, one column each (default 1: ten columns)
  --only a,b          only these rows (names as in the picture)
${outFlag.help(COLUMN, 'output folder (default out)')}
${trustFlag.help(COLUMN)}

Example:
  torch-guidance compare --steps 30 --per-class 2 --out out/compare-30`;

const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** The command line of `compare`, checked. */
interface CompareFlags {
  argv: string[];
  modelPath: string;
  /** Given model files (a missing one is an error) or the package's (a missing one leaves its row out). */
  guide: { path: string; given: boolean };
  sims: { path: string; given: boolean };
  classifier: { path: string; given: boolean };
  device: DeviceName;
  /** --sampler as given, for the report. */
  samplerName: string;
  sampler: SamplerOptions;
  steps: number;
  seed: number;
  perClass: number;
  only: string[] | undefined;
  out: string;
  trust: 'full' | 'scan';
}

function readCompareFlags(argv: string[]): CompareFlags {
  const { values } = parseFlags(argv, {
    ...modelFlags.option,
    ...deviceFlag.option,
    sampler: { type: 'string', default: 'euler' },
    ...stepsFlag.option(DEFAULT_STEPS),
    ...seedFlag.option,
    'per-class': { type: 'string', default: '1' },
    only: { type: 'string' },
    ...outFlag.option('out'),
    ...trustFlag.option,
  } as const);
  const steps = stepsFlag.read(values.steps);
  const perClass = intFlag('--per-class', values['per-class'], 1, 1000);
  const seed = Number(seedFlag.read(values.seed, BigInt(Number.MAX_SAFE_INTEGER)));
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((name) => !compareRows.some((r) => r.name === name));
  if (unknown?.length) throw new UsageError(`--only: no row named ${unknown.map((u) => `'${u}'`).join(', ')}; rows: ${compareRows.map((r) => r.name).join(', ')}.`);
  const optional = (role: 'guide' | 'sims' | 'classifier') => ({ path: modelFlags.path(role, values[role]), given: values[role] !== undefined });
  return {
    argv,
    modelPath: modelFlags.path('model', values.model),
    guide: optional('guide'),
    sims: optional('sims'),
    classifier: optional('classifier'),
    device: deviceFlag.read(values.device),
    samplerName: values.sampler,
    sampler: parseSamplerSpec(values.sampler, steps, parseScheduleSpec('karras')),
    steps,
    seed,
    perClass,
    only,
    out: outFlag.read(values.out),
    trust: trustFlag.read(values.trust),
  };
}

/** A model the command can do without: undefined when the package's default file is missing. */
async function loadOptional(file: { path: string; given: boolean }, device: DeviceName, trust: 'full' | 'scan'): Promise<Model | undefined> {
  if (!file.given && !existsSync(file.path)) return undefined;
  return loadModel(file.path, { device, trust });
}

/** How many of the samples the classifier labels as their requested class (null labels are not counted). */
async function agreement(classifier: Model, images: Tensor, labels: readonly (number | null)[]): Promise<{ agree: number; of: number }> {
  using logits = await classifier.forward<Tensor>(images);
  return classifierAgreement((await logits.toArray()) as Float32Array, logits.shape[1]!, labels);
}

/** The number of classes of a class-conditional model, or a UsageError. */
function classCount(model: Model, path: string): number {
  const numClasses = model.card && 'conditioning' in model.card && model.card.conditioning.kind === 'class' ? model.card.conditioning.numClasses : 0;
  if (numClasses === 0) throw new UsageError(`${path} is not class-conditional; compare needs a class-conditional model.`);
  return numClasses;
}

/** One row of the comparison, sampled: its picture row and its report line. */
interface SampledRow {
  figure: LabelledRow;
  report: string;
}

/** Samples one row's strategies on the shared seeds and classes, and scores it with the classifier if there is one. */
async function sampleRow(
  row: (typeof compareRows)[number],
  models: CompareModels,
  classifier: Model | undefined,
  flags: CompareFlags,
  conditional: number[],
): Promise<SampledRow> {
  const strategies = row.strategies(models);
  const labels = row.unconditional ? conditional.map(() => null) : conditional;
  const options = { model: models.main, guidance: strategies, sampler: flags.sampler, labels, seed: flags.seed, batchSize: labels.length, clipDenoised: [-1, 1] as [number, number] };
  // Samples through a model per sample and step: 2 for CFG's batched 2N forward.
  const evaluations = explain(options).modelEvaluations / flags.steps;
  const result = await sample(options);
  try {
    const settings = describeSettings(strategies);
    const agree = classifier && !row.unconditional ? await agreement(classifier, result.images, labels) : undefined;
    const forwardsPerStep = (result.forwards / flags.steps).toFixed(1).replace(/\.0$/, '');
    const seconds = (result.timings.totalMs / 1000).toFixed(1);
    console.log(
      `${row.name.padEnd(18)} ${settings.padEnd(40)} ${String(result.forwards).padStart(4)} forwards  ${seconds.padStart(5)} s` +
        (agree ? `  classifier ${agree.agree}/${agree.of}` : ''),
    );
    return {
      figure: { label: row.name, sublabel: settings, images: await toImages(result.images) },
      report:
        `| ${row.name} | ${settings} | ${result.forwards} (${forwardsPerStep}/step) | ${Number(evaluations.toFixed(2))} | ` +
        `${seconds} s | ${agree ? `${agree.agree}/${agree.of}` : '—'} |`,
    };
  } finally {
    result.images.dispose();
  }
}

/** The Markdown report: the command, the machine, the settings, and a table of the rows. */
function reportText(flags: CompareFlags, main: Model, classifier: Model | undefined, numClasses: number, rows: SampledRow[], started: number): string {
  const info = runtimeInfo();
  const seeds = `${flags.seed}..${flags.seed + numClasses * flags.perClass - 1}`;
  return [
    '# Guidance comparison',
    '',
    `Command: \`torch-guidance compare ${flags.argv.join(' ')}\`  `,
    `Date: ${new Date().toISOString()}  `,
    `Device: ${main.device}${info.cudaAvailable ? ` (${info.cudaDevices[0]?.model ?? 'CUDA'})` : ''}, libtorch ${info.torchVersion}, ${info.intraOpThreads} intra-op threads  `,
    `Model: ${relative(process.cwd(), resolve(flags.modelPath))}; sampler ${flags.samplerName}, ${flags.steps} steps, denoised estimates clipped to [-1, 1]; seeds ${seeds}; ` +
      `columns: ${flags.perClass} per class, classes ${CLASS_NAMES.slice(0, numClasses).join(', ')}.  `,
    `Classifier: ${classifier ? `${relative(process.cwd(), resolve(flags.classifier.path))}, samples labelled as the requested class` : 'none'}. ` +
      'With one sample per class the agreement column is a glance, not a metric (benchmarks/quality measures it on thousands).',
    '',
    '![comparison](compare.png)',
    '',
    '| row | settings | forwards | model evaluations per sample and step | time | classifier |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => r.report),
    '',
    `Total: ${((performance.now() - started) / 1000).toFixed(1)} s.`,
    '',
  ].join('\n');
}

/** Runs `torch-guidance compare` with `argv`. */
export async function compareCommand(argv: string[]): Promise<void> {
  const flags = readCompareFlags(argv);
  const started = performance.now();
  using main = await loadModel(flags.modelPath, { device: flags.device, trust: flags.trust });
  const guide = await loadOptional(flags.guide, main.device, flags.trust);
  const sims = await loadOptional(flags.sims, main.device, flags.trust);
  const classifier = await loadOptional(flags.classifier, main.device, flags.trust);
  const models: CompareModels = { main, ...(guide ? { guide } : {}), ...(sims ? { sims } : {}) };
  try {
    const numClasses = classCount(main, flags.modelPath);
    const conditional = Array.from({ length: numClasses * flags.perClass }, (_, i) => Math.floor(i / flags.perClass));
    const rows: SampledRow[] = [];
    for (const row of compareRows.filter((r) => (!flags.only || flags.only.includes(r.name)) && (!r.needs || models[r.needs]))) {
      rows.push(await sampleRow(row, models, classifier, flags, conditional));
    }
    const outDir = resolve(flags.out);
    await mkdir(outDir, { recursive: true });
    const columns = CLASS_NAMES.length === numClasses ? 'classes 0-9' : `${numClasses} classes`;
    const title = `${main.card?.name ?? 'model'}: ${flags.samplerName} ${flags.steps} steps, seeds ${flags.seed}..${flags.seed + conditional.length - 1}, columns: ${columns}`;
    const png = join(outDir, 'compare.png');
    await writePng(png, labelledRows(rows.map((r) => r.figure), { scale: 2, title }));
    const md = join(outDir, 'compare.md');
    await writeBytesAtomic(md, new TextEncoder().encode(reportText(flags, main, classifier, numClasses, rows, started)));
    console.log(`wrote ${relative(process.cwd(), png)} and ${relative(process.cwd(), md)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  } finally {
    guide?.dispose();
    sims?.dispose();
    classifier?.dispose();
  }
}
