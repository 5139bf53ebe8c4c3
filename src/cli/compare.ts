/**
 * `torch-guidance compare`: the same seeds and classes sampled with every
 * guidance method, as one labelled picture and a Markdown report (settings,
 * forwards, time, and how many samples the evaluation classifier labels as
 * the requested class). The package's main job (`npm start`).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { writeBytesAtomic } from '../io/atomic.js';
import { labelledRows, toImages, writePng, type LabelledRow } from '../image/index.js';
import { loadModel, type Model } from '../model/model.js';
import { runtimeInfo } from '../core/runtime.js';
import { explain, sample } from '../sampling/sample.js';
import type { DeviceName, Tensor } from '../core/tensor.js';
import { classifierAgreement } from '../metrics/classifier-agreement.js';
import { compareRows, describeSettings, type CompareModels } from './compare-rows.js';
import { trustFlag, trustHelp, trustLevel } from './trust-flag.js';
import { UsageError } from '../core/usage-error.js';
import { shippedModel } from '../runs/package-paths.js';

export const compareHelp = `Usage: torch-guidance compare [options]

Samples the same seeds and classes with no guidance, CFG, PAG, SEG, SAG,
autoguidance, SIMS, ICG, TSG, SLG, CFG + PAG and unconditional rows, and writes one
labelled picture (<out>/compare.png) and a report (<out>/compare.md) with each
row's settings, forward count, time and classifier agreement.

Options:
  --model PATH        main model (default the package's models/fashion-unet.pt)
  --guide PATH        weak model for autoguidance (default the package's models/fashion-unet-weak.pt; row left out if missing)
  --sims PATH         SIMS negative (default the package's models/fashion-unet-sims.pt; row left out if missing)
  --classifier PATH   evaluation classifier (default the package's models/fashion-classifier.pt; column left out if missing)
  --device NAME       auto (default), cpu, cuda, cuda:N
  --sampler NAME      euler (default), heun, ddim, euler_ancestral, dpmpp_2m
  --steps N           sampler steps (default 20)
  --seed N            seed of sample 0; sample i uses seed + i (default 0)
  --per-class N       samples per class, one column each (default 1: ten columns)
  --only a,b          only these rows (names as in the picture)
  --out DIR           output folder (default out)
${trustHelp(22)}

Example:
  torch-guidance compare --steps 30 --per-class 2 --out out/compare-30`;

const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got '${value}'.`);
  return n;
}

async function loadOptional(path: string, device: DeviceName, explicit: boolean, trust: 'full' | 'scan'): Promise<Model | undefined> {
  if (!explicit && !existsSync(path)) return undefined;
  return loadModel(path, { device, trust });
}

/** How many of the samples the classifier labels as their requested class (null labels are not counted). */
async function agreement(classifier: Model, images: Tensor, labels: readonly (number | null)[]): Promise<{ agree: number; of: number }> {
  using logits = await classifier.forward<Tensor>(images);
  return classifierAgreement((await logits.toArray()) as Float32Array, logits.shape[1]!, labels);
}

export async function compareCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string', default: shippedModel('fashion-unet.pt') },
      guide: { type: 'string' },
      sims: { type: 'string' },
      classifier: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      sampler: { type: 'string', default: 'euler' },
      steps: { type: 'string', default: '20' },
      seed: { type: 'string', default: '0' },
      'per-class': { type: 'string', default: '1' },
      only: { type: 'string' },
      out: { type: 'string', default: 'out' },
      ...trustFlag,
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${String(positionals.at(0))}'.`);
  const steps = positiveInt(values.steps, '--steps');
  const perClass = positiveInt(values['per-class'], '--per-class');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer, got '${values.seed}'.`);
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((name) => !compareRows.some((r) => r.name === name));
  if (unknown?.length) throw new UsageError(`--only: no row named ${unknown.map((u) => `'${u}'`).join(', ')}; rows: ${compareRows.map((r) => r.name).join(', ')}.`);

  const device = values.device as DeviceName;
  const started = performance.now();
  const trust = trustLevel(values.trust);
  using main = await loadModel(values.model, { device, trust });
  const guide = await loadOptional(values.guide ?? shippedModel('fashion-unet-weak.pt'), main.device, values.guide !== undefined, trust);
  const sims = await loadOptional(values.sims ?? shippedModel('fashion-unet-sims.pt'), main.device, values.sims !== undefined, trust);
  const classifier = await loadOptional(values.classifier ?? shippedModel('fashion-classifier.pt'), main.device, values.classifier !== undefined, trust);
  const models: CompareModels = { main, ...(guide ? { guide } : {}), ...(sims ? { sims } : {}) };
  try {
    const numClasses = main.card && 'conditioning' in main.card && main.card.conditioning.kind === 'class' ? main.card.conditioning.numClasses : 0;
    if (numClasses === 0) throw new UsageError(`${values.model} is not class-conditional; compare needs a class-conditional model.`);
    const conditional = Array.from({ length: numClasses * perClass }, (_, i) => Math.floor(i / perClass));
    const sampler = { name: values.sampler, steps } as const;

    const rows = compareRows.filter((r) => (!only || only.includes(r.name)) && (!r.needs || models[r.needs]));
    const figure: LabelledRow[] = [];
    const report: string[] = [];
    for (const row of rows) {
      const strategies = row.strategies(models);
      const labels = row.unconditional ? conditional.map(() => null) : conditional;
      const options = { model: main, guidance: strategies, sampler: sampler as never, labels, seed, batchSize: labels.length, clipDenoised: [-1, 1] as [number, number] };
      // Samples through a model per sample and step: 2 for CFG's batched 2N forward.
      const evaluations = explain(options).modelEvaluations / steps;
      const result = await sample(options);
      try {
        const settings = describeSettings(strategies);
        const agree = classifier && !row.unconditional ? await agreement(classifier, result.images, labels) : undefined;
        figure.push({ label: row.name, sublabel: settings, images: await toImages(result.images) });
        const forwardsPerStep = (result.forwards / steps).toFixed(1).replace(/\.0$/, '');
        const line =
          `| ${row.name} | ${settings} | ${result.forwards} (${forwardsPerStep}/step) | ${Number(evaluations.toFixed(2))} | ` +
          `${(result.timings.totalMs / 1000).toFixed(1)} s | ${agree ? `${agree.agree}/${agree.of}` : '—'} |`;
        report.push(line);
        console.log(`${row.name.padEnd(18)} ${settings.padEnd(40)} ${String(result.forwards).padStart(4)} forwards  ${(result.timings.totalMs / 1000).toFixed(1).padStart(5)} s${agree ? `  classifier ${agree.agree}/${agree.of}` : ''}`);
      } finally {
        result.images.dispose();
      }
    }

    const outDir = resolve(values.out);
    await mkdir(outDir, { recursive: true });
    const picture = labelledRows(figure, {
      scale: 2,
      title: `${main.card?.name ?? 'model'}: ${values.sampler} ${steps} steps, seeds ${seed}..${seed + conditional.length - 1}, columns: ${CLASS_NAMES.length === numClasses ? 'classes 0-9' : `${numClasses} classes`}`,
    });
    const png = join(outDir, 'compare.png');
    await writePng(png, picture);
    const info = runtimeInfo();
    const md = [
      '# Guidance comparison',
      '',
      `Command: \`torch-guidance compare ${argv.join(' ')}\`  `,
      `Date: ${new Date().toISOString()}  `,
      `Device: ${main.device}${info.cudaAvailable ? ` (${info.cudaDevices[0]?.model ?? 'CUDA'})` : ''}, libtorch ${info.torchVersion}, ${info.intraOpThreads} intra-op threads  `,
      `Model: ${relative(process.cwd(), resolve(values.model))}; sampler ${values.sampler}, ${steps} steps, denoised estimates clipped to [-1, 1]; seeds ${seed}..${seed + conditional.length - 1}; ` +
        `columns: ${perClass} per class, classes ${CLASS_NAMES.slice(0, numClasses).join(', ')}.  `,
      `Classifier: ${classifier ? `${relative(process.cwd(), resolve(values.classifier ?? shippedModel('fashion-classifier.pt')))}, samples labelled as the requested class` : 'none'}. ` +
        'With one sample per class the agreement column is a glance, not a metric (benchmarks/quality measures it on thousands).',
      '',
      '![comparison](compare.png)',
      '',
      '| row | settings | forwards | model evaluations per sample and step | time | classifier |',
      '|---|---|---|---|---|---|',
      ...report,
      '',
      `Total: ${((performance.now() - started) / 1000).toFixed(1)} s.`,
      '',
    ].join('\n');
    await writeBytesAtomic(join(outDir, 'compare.md'), new TextEncoder().encode(md));
    console.log(`wrote ${relative(process.cwd(), png)} and ${relative(process.cwd(), join(outDir, 'compare.md'))} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  } finally {
    guide?.dispose();
    sims?.dispose();
    classifier?.dispose();
  }
}
