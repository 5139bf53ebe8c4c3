/**
 * The sample-quality statistics on libtorch (src/metrics/statistics.ts:
 * float64 on a torch thread) next to numpy on the same features, in one run:
 * the Gaussian fit (mean and covariance), the Fréchet distance from two fits
 * at several widths (2048: Inception's, as FID uses), and precision/recall
 * with k-NN manifolds at the size featureMetrics uses by default.
 *
 *   npx tsx benchmarks/fd.ts [--count 10000] [--dims 256,1024,2048] [--rounds 5] [--eigvals-rounds 1] [--pr-size 2000] [--pr-dim 2048] [--pr-rounds 5]
 *
 * numpy (benchmarks/python/fd_reference.py) runs with as many BLAS threads as
 * one of our jobs gets (OPENBLAS_NUM_THREADS), so both sides use the same
 * cores. Its FD comes two ways: the eigenvalues of the non-symmetric Σ1·Σ2
 * (the quantity pytorch-fid takes from scipy.linalg.sqrtm) and our own
 * Cholesky route written in numpy. Writes benchmarks/results/fd-cpu.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { runtimeInfo } from '../src/index.js';
import { featureSet, frechetDistance, gaussianStats, precisionRecall, type FeatureSet } from '../src/metrics/statistics.js';
import { blasFor, flag, machineFor, median } from './cli.js';

const root = join(import.meta.dirname, '..');
const count = Number(flag('count', '10000'));
const dims = flag('dims', '256,1024,2048').split(',').map(Number);
const rounds = Number(flag('rounds', '5'));
const eigvalsRounds = Number(flag('eigvals-rounds', '1'));
const prSize = Number(flag('pr-size', '2000'));
const prDim = Number(flag('pr-dim', '2048'));
const prRounds = Number(flag('pr-rounds', '5'));
const info = runtimeInfo();
const python = process.env.TORCH_GUIDANCE_PYTHON ?? '/usr/bin/python3';
const blasThreads = info.blas.threads ?? 1;

/** mulberry32 and Box–Muller: the same features on every run. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

/**
 * Features of one distribution per width (per-feature scales and 8 shared
 * factors drawn from `dim`: a dense covariance of full rank), `n` vectors
 * drawn from `seed`, shifted by `shift` in every feature; in float64.
 */
function features(seed: number, n: number, dim: number, shift: number): FeatureSet {
  const model = generator(dim);
  const scales = Float64Array.from({ length: dim }, () => 0.5 + Math.abs(model()));
  const loadings = Float64Array.from({ length: 8 * dim }, () => 0.3 * model());
  const normal = generator(seed);
  const data = new Float64Array(n * dim);
  const u = new Float64Array(8);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < 8; f++) u[f] = normal();
    for (let d = 0; d < dim; d++) {
      let v = shift + scales[d]! * normal();
      for (let f = 0; f < 8; f++) v += u[f]! * loadings[f * dim + d]!;
      data[i * dim + d] = v;
    }
  }
  return featureSet(data, n, dim);
}

async function timed<T>(times: number, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const samples: number[] = [];
  let value!: T;
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    value = await fn();
    samples.push(performance.now() - start);
  }
  return { ms: median(samples), value };
}

const dir = mkdtempSync(join(tmpdir(), 'tg-fd-bench-'));
function numpy(args: (string | number)[], inputs: Record<string, FeatureSet>): Record<string, number> {
  for (const [name, set] of Object.entries(inputs)) writeFileSync(join(dir, name), set.data);
  const out = execFileSync(python, [join(root, 'benchmarks', 'python', 'fd_reference.py'), ...args.map(String)], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: String(blasThreads) },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out) as Record<string, number>;
}

const fmt = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
/** Median and, in brackets, the fastest round: the machine is shared, and the fastest is the least disturbed. */
const spread = (values: number[]) => `${fmt(median(values))} (${fmt(Math.min(...values))})`;
const load = () => loadavg()[0]!.toFixed(1);
const loadAtStart = load();

const fdRows: string[] = [];
try {
  for (const dim of dims) {
    const a = features(1, count, dim, 0);
    const b = features(2, count, dim, 0.05);
    const files = { 'a.bin': a, 'b.bin': b };
    const statsB = await gaussianStats(b);
    await frechetDistance(await gaussianStats(a), statsB); // warm-up
    const ours = { fit: [] as number[], fd: [] as number[] };
    const theirs = { fit: [] as number[], fd: [] as number[], eigvals: NaN, value: NaN };
    let value = NaN;
    // The two sides alternate round by round, so that both meet the same load.
    for (let round = 0; round < rounds; round++) {
      const fit = await timed(1, () => gaussianStats(a));
      const fd = await timed(1, () => frechetDistance(fit.value, statsB));
      ours.fit.push(fit.ms);
      ours.fd.push(fd.ms);
      value = fd.value;
      const numbers = numpy(['fd', join(dir, 'a.bin'), join(dir, 'b.bin'), count, dim, 1, round < eigvalsRounds ? 1 : 0], round === 0 ? files : {});
      theirs.fit.push(numbers.statsMs!);
      theirs.fd.push(numbers.choleskyMs!);
      theirs.value = numbers.fdCholesky!;
      if (numbers.eigvalsMs !== undefined) theirs.eigvals = Number.isNaN(theirs.eigvals) ? numbers.eigvalsMs : Math.min(theirs.eigvals, numbers.eigvalsMs);
    }
    const agree = Math.abs(value - theirs.value) / (Math.abs(theirs.value) || 1);
    fdRows.push(
      `| ${dim} | ${spread(ours.fit)} | ${spread(theirs.fit)} | **${spread(ours.fd)}** | ${spread(theirs.fd)} | ${Number.isNaN(theirs.eigvals) ? '—' : fmt(theirs.eigvals)} | ${value.toFixed(4)} | ${agree.toExponential(1)} |`,
    );
    console.log(fdRows.at(-1));
  }

  const real = features(3, prSize, prDim, 0);
  const fake = features(4, prSize, prDim, 0.05);
  const prOurs: number[] = [];
  const prTheirs: number[] = [];
  let ours = { precision: NaN, recall: NaN };
  let theirs: Record<string, number> = {};
  for (let round = 0; round < prRounds; round++) {
    const pr = await timed(1, () => precisionRecall(real, fake, 3));
    prOurs.push(pr.ms);
    ours = pr.value;
    theirs = numpy(['pr', join(dir, 'real.bin'), join(dir, 'fake.bin'), prSize, prDim, 3], round === 0 ? { 'real.bin': real, 'fake.bin': fake } : {});
    prTheirs.push(theirs.ms!);
  }
  const prRow = `| ${prSize} × ${prSize}, ${prDim}-d, k = 3 | **${spread(prOurs)}** | ${spread(prTheirs)} | ${ours.precision.toFixed(4)} / ${ours.recall.toFixed(4)} | ${theirs.precision!.toFixed(4)} / ${theirs.recall!.toFixed(4)} |`;
  console.log(prRow);

  const args = process.argv.slice(2);
  const report = `# Feature statistics: libtorch vs numpy

Command: \`npx tsx benchmarks/fd.ts${args.length ? ' ' + args.join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor('cpu')}; libtorch ${info.torchVersion}, ${info.jobThreads} torch threads, ${info.intraOpThreads} intra-op threads; Node ${process.version}  
${blasFor({ python: true })}; numpy here: OPENBLAS_NUM_THREADS=${blasThreads}, as one of our jobs  
Method: ${count} float64 feature vectors per set, two sets of one distribution a little apart (per-feature scales and 8
shared factors: a dense covariance of full rank), the same bytes on both sides. ${rounds} rounds, ours and numpy's
alternating; each cell gives the median and, in brackets, the fastest round (numpy's eigvals: the fastest of
${eigvalsRounds}). Load average (1 min) ${loadAtStart} at the start and ${load()} at the end: the machine is shared.
Ours: \`gaussianStats\` and \`frechetDistance\` (src/metrics/statistics.ts), each one native job, timed from the call
to the settled promise (copies in and out included). numpy: \`benchmarks/python/fd_reference.py\`, timed inside
Python.

## Fréchet distance

| dim | Gaussian fit, ours | numpy (mean, cov) | **FD, ours** | numpy, same Cholesky route | numpy eigvals(Σ1Σ2) | FD | relative difference |
|---:|---:|---:|---:|---:|---:|---:|---:|
${fdRows.join('\n')}

FD from two fits already made (what \`frechetDistance\` takes); the fit is per set. The last column compares our FD with
numpy's Cholesky route on the same statistics.

## Precision and recall

| sets (${prRounds} rounds) | **ours** | numpy (matrix form, blocks of 1024 rows) | precision / recall, ours | numpy |
|---|---:|---:|---:|---:|
${prRow}

Both sides compute distances in float64 from the same matrix form. numpy makes three n × n passes (the radii of each
set, then the cross distances); ours measures each pair within a set once (the radii at 56 % of the flops) and works in
blocks of at most about 64 MB, so 50,000 × 50,000 vectors never hold their 20 GB of distances at once.
`;
  writeFileSync(join(root, 'benchmarks', 'results', 'fd-cpu.md'), report);
  console.log(report);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
