/**
 * Sample quality of every guidance strategy on the shipped Fashion-MNIST
 * models: FD, classifier accuracy and precision/recall per setting, a scale
 * sweep per strategy, a repeat on other seeds, the papers' claims checked.
 *
 *   npx tsx benchmarks/quality/run.ts [--quick] [--n N] [--steps S] [--sampler euler|ddim]
 *                                     [--batch B] [--resume] [--from FILE] [--out DIR]
 *                                     [--only FAMILY[,FAMILY...]]
 *
 * Writes benchmarks/results/quality.md, its charts (quality-<metric>.png), a
 * picture of each strategy's best setting and the raw numbers (quality.json);
 * --quick writes quality-quick.* to out/quality-quick/ instead (--out DIR); --only runs
 * the named families (and the unguided rows their curves start from) and
 * writes to out/quality-only/ (a partial run never replaces the report).
 * Intermediate results go to
 * benchmarks/quality/cache/ (gitignored): --resume continues an interrupted
 * run with the same options; --from redraws the report from a cached run.
 * Not part of `npm test`; test/quality-metrics.test.ts checks the metrics.
 *
 * Defaults: N = 400 samples per setting, Euler 10 steps, batch 200; --quick:
 * N = 40, 6 steps, one or two scales per strategy. Threads are the
 * package's (TORCH_GUIDANCE_INTRAOP_THREADS, default all cores); on a
 * machine shared with other jobs 1 can be faster. Metrics do not depend on it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';

import { loadModel, randn, runtimeInfo, tensor, type Tensor } from '../../src/index.js';
import { blasFor } from '../cli.js';
import { settingsToRepeat } from './claims.js';
import { Classifier } from '../../src/metrics/classifier.js';
import { evaluate } from './evaluate.js';
import { CACHE_DIR, reference, trainSubsetScores } from './reference.js';
import { writeReport } from './report.js';
import type { Results, RunMeta, SettingResult } from './results.js';
import { sampleSetting, type SamplerChoice } from './sampling.js';
import { sweep, type Models, type Setting } from './sweep.js';

const root = join(import.meta.dirname, '..', '..');
const argv = process.argv.slice(2);
const { values } = parseArgs({
  args: argv,
  options: {
    quick: { type: 'boolean', default: false },
    n: { type: 'string' },
    steps: { type: 'string' },
    sampler: { type: 'string', default: 'euler' },
    batch: { type: 'string' },
    resume: { type: 'boolean', default: false },
    from: { type: 'string' },
    out: { type: 'string' },
    only: { type: 'string' },
  },
});
const only = values.only?.split(',').map((name) => name.trim()).filter((name) => name !== '');
const quick = values.quick;
const positive = (value: string | undefined, fallback: number, flag: string) => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got '${value}'`);
  return n;
};
/** Defaults sized for about 45 minutes on a 2-core CPU (docs/benchmarks.md). */
const n = positive(values.n, quick ? 40 : 400, '--n');
if (n % 10 !== 0 || n < 20) throw new Error(`--n must be a multiple of 10 and at least 20 (class-balanced), got ${n}`);
const steps = positive(values.steps, quick ? 6 : 10, '--steps');
if (values.sampler !== 'euler' && values.sampler !== 'ddim') throw new Error(`--sampler must be euler or ddim, got '${values.sampler}'`);
const sampler: SamplerChoice = { name: values.sampler, steps };
const batchSize = positive(values.batch, Math.min(n, 200), '--batch');
const K = 3;
const SEEDS = { a: 0, b: 1_000_000 };

const modelPaths = {
  main: 'models/fashion-unet.pt',
  guide: 'models/fashion-unet-weak.pt',
  sims: 'models/fashion-unet-sims.pt',
  vit: 'models/fashion-vit.pt',
};
const classifierPath = 'models/fashion-classifier.pt';

interface Progress {
  key: string;
  meta?: RunMeta;
  settings: SettingResult[];
  /** Setting id → base64 of the first samples of seed set A (uint8, 28×28 each). */
  previews: Record<string, string>;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp-${process.pid}`, JSON.stringify(value));
  renameSync(`${path}.tmp-${process.pid}`, path);
}

function previewsOf(progress: Progress) {
  return {
    get: (id: string) => {
      const b64 = progress.previews[id];
      if (!b64) return undefined;
      const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
      return Array.from({ length: bytes.length / 784 }, (_, i) => bytes.slice(i * 784, (i + 1) * 784));
    },
  };
}

async function render(progress: Progress): Promise<void> {
  const results: Results = { meta: progress.meta!, settings: progress.settings };
  const suffix = results.meta.quick ? '-quick' : '';
  // Smoke and partial runs stay out of benchmarks/results (out/ is gitignored).
  const partial = results.meta.quick ? ['out', 'quality-quick'] : only ? ['out', 'quality-only'] : ['benchmarks', 'results'];
  const outDir = values.out ?? join(root, ...partial);
  mkdirSync(outDir, { recursive: true });
  writeJson(join(outDir, `quality${suffix}.json`), results);
  const path = await writeReport(results, outDir, previewsOf(progress));
  console.log(`wrote ${relative(process.cwd(), path)}`);
}

if (values.from) {
  await render(JSON.parse(readFileSync(values.from, 'utf8')) as Progress);
  process.exit(0);
}

const started = performance.now();
const info = runtimeInfo();
const fileHash = (p: string) => createHash('sha256').update(readFileSync(join(root, p))).digest('hex').slice(0, 12);
const key = createHash('sha256')
  .update(JSON.stringify({ n, steps, sampler, batchSize, SEEDS, K, models: Object.values(modelPaths).map(fileHash), classifier: fileHash(classifierPath), quick, only }))
  .digest('hex')
  .slice(0, 16);
mkdirSync(CACHE_DIR, { recursive: true });
const progressPath = join(CACHE_DIR, `run-${key}.json`);
const progress: Progress =
  values.resume && existsSync(progressPath) ? (JSON.parse(readFileSync(progressPath, 'utf8')) as Progress) : { key, settings: [], previews: {} };
if (values.resume) console.log(`resuming ${relative(process.cwd(), progressPath)}: ${progress.settings.length} settings done`);

const models: Models = {
  main: await loadModel(join(root, modelPaths.main), { device: 'cpu' }),
  guide: await loadModel(join(root, modelPaths.guide), { device: 'cpu' }),
  sims: await loadModel(join(root, modelPaths.sims), { device: 'cpu' }),
  vit: await loadModel(join(root, modelPaths.vit), { device: 'cpu' }),
};
const classifier = await Classifier.load(join(root, classifierPath), { device: 'cpu' });

// The cost of one model evaluation per sample: unguided forwards of the main model at the batch size used.
async function measureStepCost(): Promise<number> {
  using x = randn([batchSize, 1, 28, 28], { seed: 1 });
  using t = tensor(new Float32Array(batchSize).fill(500), [batchSize]);
  using label = tensor(BigInt64Array.from({ length: batchSize }, (_, i) => BigInt(i % 10)), [batchSize]);
  for (let i = 0; i < 2; i++) (await models.main.forward<Tensor>(x, t, label)).dispose(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    (await models.main.forward<Tensor>(x, t, label)).dispose();
    times.push(performance.now() - t0);
  }
  return Math.min(...times) / batchSize;
}
const stepMsPerSample = await measureStepCost();
const settings = sweep(quick, only);
const unitsA = settings.reduce((sum, s) => sum + s.family.cost, 0);
// The repeat: about one setting per family (2 evaluations each) plus CFG's highest scale.
const unitsB = (new Set(settings.map((s) => s.family.name)).size + 1) * 2;
const scoringSeconds = (settings.length + 14) * (1.5 + n / 400); // classifier + FD + precision/recall per run, measured
const estimateSeconds = ((unitsA + unitsB) * n * steps * stepMsPerSample) / 1000 + scoringSeconds;
console.log(
  `${settings.length} settings, N = ${n}, ${sampler.name} ${steps} steps, batch ${batchSize}; ` +
    `${stepMsPerSample.toFixed(2)} ms per sample and model evaluation (load ${loadavg()[0]!.toFixed(1)}): estimate ${(estimateSeconds / 60).toFixed(1)} min`,
);

const ref = await reference(classifier, n, K);
console.log(`reference statistics (${ref.source}): ${ref.seconds.toFixed(1)} s; classifier test accuracy ${(ref.testAccuracy * 100).toFixed(2)} %`);
const train = await trainSubsetScores(classifier, n);
const realData = await evaluate(train.scored, train.labels, ref);
console.log(`real data (N = ${n} training images): FD ${realData.fd.toFixed(2)} acc ${realData.accuracy?.toFixed(3)} P ${realData.precision.toFixed(3)} R ${realData.recall.toFixed(3)}`);

const fmtMetrics = (m: SettingResult['runs'][number]['metrics']) =>
  `FD ${m.fd.toFixed(2).padStart(7)}  acc ${m.accuracy === null ? '  —  ' : m.accuracy.toFixed(3)}  P ${m.precision.toFixed(3)}  R ${m.recall.toFixed(3)}`;

async function runSetting(setting: Setting, seed: number, runIndex: 0 | 1): Promise<void> {
  let result = progress.settings.find((s) => s.id === setting.id);
  if (result && result.runs[runIndex]) return; // resumed
  const sampled = await sampleSetting(setting, models, classifier, { n, seed, sampler, batchSize });
  const metrics = await evaluate(sampled.scored, sampled.labels, ref);
  if (!result) {
    result = { id: setting.id, family: setting.family.name, scale: setting.scale, weight: setting.weight, unconditional: setting.family.unconditional, runs: [] };
    progress.settings.push(result);
  }
  result.runs[runIndex] = { seed, metrics, seconds: sampled.seconds, forwards: sampled.forwards };
  if (runIndex === 0) progress.previews[setting.id] = Buffer.concat(sampled.preview).toString('base64');
  writeJson(progressPath, progress);
  const elapsed = (performance.now() - started) / 1000;
  console.log(`${runIndex ? 'B' : 'A'} ${setting.id.padEnd(22)} ${fmtMetrics(metrics)}  ${sampled.seconds.toFixed(1).padStart(6)} s  (${(elapsed / 60).toFixed(1)} min)`);
}

try {
  for (const setting of settings) await runSetting(setting, SEEDS.a, 0);
  const partial: Results = { meta: { realData } as RunMeta, settings: progress.settings };
  const repeat = settingsToRepeat(partial);
  console.log(`repeat on seed set B: ${repeat.join(', ')}`);
  for (const id of repeat) await runSetting(settings.find((s) => s.id === id)!, SEEDS.b, 1);
} finally {
  classifier.dispose();
  models.main.dispose();
  models.guide.dispose();
  models.sims.dispose();
  models.vit.dispose();
}

const totalSeconds = (performance.now() - started) / 1000;
progress.meta = {
  command: `${['TORCH_GUIDANCE_INTRAOP_THREADS', 'TORCH_GUIDANCE_JOB_THREADS', 'TORCH_GUIDANCE_BLAS_THREADS', 'OPENBLAS_NUM_THREADS']
    .filter((v) => process.env[v])
    .map((v) => `${v}=${process.env[v]} `)
    .join('')}npx tsx benchmarks/quality/run.ts${argv.length ? ' ' + argv.join(' ') : ''}`,
  date: new Date().toISOString(),
  machine: `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length} (load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end)`,
  libtorch: info.torchVersion,
  threads: info.intraOpThreads,
  blas: blasFor(),
  node: process.version,
  sampler: { name: sampler.name, steps, schedule: 'the package default sigmas: Karras ρ = 7 over the model\'s discrete σ range' },
  n,
  batchSize,
  seeds: SEEDS,
  k: K,
  quick,
  models: modelPaths,
  classifier: { path: classifierPath, testAccuracy: ref.testAccuracy },
  timing: { totalSeconds, referenceSeconds: ref.seconds, stepMsPerSample, estimateSeconds },
  realData,
};
writeJson(progressPath, progress);
await render(progress);
console.log(`total ${(totalSeconds / 60).toFixed(1)} min`);
