/**
 * Guided sampling speed: this package next to a Python loop written the way
 * users write it (benchmarks/python/sample_loop.py), same TorchScript model,
 * same Euler sampler, sigmas, batch and strategy, in one run, alternating.
 *
 *   npx tsx benchmarks/speed.ts [--device cpu|cuda] [--batch 16] [--steps 20] [--quick]
 *                               [--only none,sag] [--python-eager] [--parallel auto|K]
 *
 * Writes benchmarks/results/speed-<device>.md (with --only, a partial table:
 * out/speed-<device>-partial.md). Columns: ms per sampling run
 * (median over runs), the ratio Python / ours (> 1: we are faster), and each
 * strategy's cost relative to unguided sampling next to its ideal (the number
 * of batch-N model evaluations per step). That cost is paired too: every run
 * of a guided row sits next to an unguided run of ours (order alternating),
 * and the column is the median of those ratios, so it does not follow the
 * drift of an unguided row measured minutes earlier.
 *
 * --python-eager: the Python loop runs the eager module (models/train/unet.py
 * with the file's weights) for every strategy, not the frozen TorchScript
 * file for none / cfg / autoguidance: the fair baseline is the faster of the two.
 *
 * The two sides alternate run by run (the Python loop stays up between runs,
 * sample_loop.py --serve), and the ratio is the median of the ratios of
 * neighbouring runs, with their quartiles: on a machine whose speed drifts
 * (this 2-core VM: identical forwards take 90-240 ms, on both sides),
 * neighbouring runs see the same drift, so the paired ratio is far steadier
 * than a ratio of medians taken minutes apart.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  autoguidance,
  cfg,
  cudaMemory,
  loadModel,
  noiseScheduleFromCard,
  pag,
  runtimeInfo,
  sag,
  sample,
  seg,
  sigmasFor,
  type DeviceName,
  type DenoiserCard,
  type Strategy,
} from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor, quantile } from './cli.js';
import { startPythonLoop } from './python-loop.js';

const root = join(import.meta.dirname, '..');
const quick = argv.includes('--quick');
const device = flag('device', 'cpu') as DeviceName;
const batch = Number(flag('batch', '16'));
const steps = Number(flag('steps', quick ? '6' : '20'));
/** Timed runs per side and strategy, alternating with the other side's. */
const runs = Number(flag('runs', quick ? '2' : '12'));
const pythonEager = argv.includes('--python-eager');
/** Ours: sample()'s default 'auto' (CPU: each forward split across the torch threads), or a number of chunks. */
const parallelFlag = flag('parallel', 'auto');
const parallel = parallelFlag === 'auto' ? 'auto' : Number(parallelFlag);
const python = pythonFor(device);
const info = runtimeInfo();

const modelPath = join(root, 'models', 'fashion-unet.pt');
const guidePath = join(root, 'models', 'fashion-unet-weak.pt');
const model = await loadModel(modelPath, { device });
const guide = await loadModel(guidePath, { device });
const sigmas = sigmasFor({ kind: 'karras', rho: 7 }, steps, noiseScheduleFromCard(model.card as DenoiserCard));

interface Row {
  name: string;
  strategies: Strategy[];
  /** Batch-N model evaluations per step in the ideal plan. */
  ideal: number;
  /** Strategy name in sample_loop.py, or null where the Python side has none. */
  python: string | null;
}
const rows: Row[] = [
  { name: 'none', strategies: [], ideal: 1, python: 'none' },
  { name: 'cfg', strategies: [cfg({ scale: 4 })], ideal: 2, python: 'cfg' },
  { name: 'pag', strategies: [pag({ scale: 3 })], ideal: 2, python: 'pag' },
  { name: 'seg', strategies: [seg({ scale: 3, sigma: 10 })], ideal: 2, python: 'seg' },
  { name: 'sag', strategies: [sag()], ideal: 2, python: 'sag' },
  { name: 'autoguidance', strategies: [autoguidance({ guide, scale: 2 })], ideal: 2, python: 'autoguidance' },
  { name: 'cfg+pag', strategies: [cfg({ scale: 4 }), pag({ scale: 3 })], ideal: 3, python: 'cfg+pag' },
];

/** The row every guided row's cost is paired with. */
const unguidedRow = rows.find((row) => row.strategies.length === 0)!;

interface OurRun {
  ms: number;
  /** Share of the run spent waiting for model forwards (their promises). */
  forwardShare: number;
  /** CUDA: the allocator's peak bytes in live tensors during the run. */
  peakBytes: number | null;
}

const cudaIndex = device.startsWith('cuda') ? Number(device.split(':')[1] ?? 0) : -1;

async function oursOnce(row: Row): Promise<OurRun> {
  const labels = Array.from({ length: batch }, (_, i) => i % 10);
  if (cudaIndex >= 0) cudaMemory(cudaIndex, { resetPeak: true });
  const start = performance.now();
  const result = await sample({
    model,
    guidance: row.strategies,
    sampler: { name: 'euler', steps, schedule: { kind: 'karras', rho: 7 } },
    labels,
    seed: 0,
    batchSize: batch,
    parallel,
  });
  await result.images.toArray(); // end on the host, as the Python side does
  const elapsed = performance.now() - start;
  result.images.dispose();
  const peakBytes = cudaIndex >= 0 ? (cudaMemory(cudaIndex)?.peakAllocated ?? null) : null;
  return { ms: elapsed, forwardShare: result.timings.forwardMs / result.timings.totalMs, peakBytes };
}

const lines: string[] = [];
const only = flag('only', '');
const chosen = only ? rows.filter((row) => only.split(',').includes(row.name)) : rows;
if (only && chosen.length === 0) throw new Error(`--only ${only}: no such strategy; choose from ${rows.map((r) => r.name).join(', ')}`);
for (const row of chosen) {
  const mine: OurRun[] = [];
  const theirs: number[] = [];
  let theirPeak: number | null = null;
  const loop = row.python
    ? await startPythonLoop({
        python,
        model: modelPath,
        guide: guidePath,
        strategy: row.python,
        batch,
        sigmas,
        threads: info.intraOpThreads,
        device,
        eager: pythonEager,
      })
    : null;
  // Unguided runs of ours next to this row's, for the paired cost column.
  const unguidedNext: number[] = [];
  const pairUnguided = row.strategies.length > 0;
  try {
    await oursOnce(row); // warm-up (the Python loop warmed up as it started)
    for (let i = 0; i < runs; i++) {
      // Alternate which side goes first, so neither always runs after the other.
      if (loop && i % 2 === 1) theirs.push(await loop.run());
      if (pairUnguided && i % 2 === 1) unguidedNext.push((await oursOnce(unguidedRow)).ms);
      mine.push(await oursOnce(row));
      if (pairUnguided && i % 2 === 0) unguidedNext.push((await oursOnce(unguidedRow)).ms);
      if (loop && i % 2 === 0) theirs.push(await loop.run());
    }
    theirPeak = loop ? await loop.peakBytes() : null;
  } finally {
    loop?.close();
  }
  const ourMs = median(mine.map((m) => m.ms));
  const costs = unguidedNext.map((u, i) => mine[i]!.ms / u);
  const cost = pairUnguided
    ? `${median(costs).toFixed(2)} (${quantile(costs, 0.25).toFixed(2)}-${quantile(costs, 0.75).toFixed(2)})`
    : '1.00';
  const pyMs = theirs.length ? median(theirs) : NaN;
  const paired = theirs.map((t, i) => t / mine[i]!.ms);
  const ratio = theirs.length
    ? `${median(paired).toFixed(2)} (${quantile(paired, 0.25).toFixed(2)}-${quantile(paired, 0.75).toFixed(2)})`
    : '—';
  const share = `${(100 * median(mine.map((m) => m.forwardShare))).toFixed(0)} %`;
  const mib = (bytes: number | null) => (bytes === null ? '—' : (bytes / 2 ** 20).toFixed(1));
  const memory = cudaIndex >= 0 ? ` ${mib(Math.max(...mine.map((m) => m.peakBytes ?? 0)))} | ${mib(theirPeak)} |` : '';
  const line = `| ${row.name} | ${ourMs.toFixed(1)} | ${theirs.length ? pyMs.toFixed(1) : '—'} | ${ratio} | ${cost} | ${row.ideal} | ${share} |${memory}`;
  lines.push(line);
  console.log(line);
}
model.dispose();
guide.dispose();

const machine = machineFor(device);
const report = `# Guided sampling speed: torch-guidance vs a Python loop (${device})

Command: \`npx tsx benchmarks/speed.ts${argv.length ? ' ' + argv.join(' ') : ''}\`
Date: ${new Date().toISOString()}
Machine: ${machine}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads on both sides (ours: shared by the chunks of a split forward that run at once)  
${blasFor({ python: true })}
Model: models/fashion-unet.pt (guide: fashion-unet-weak.pt), Euler, ${steps} Karras steps, batch ${batch}.
Each cell: median of ${runs} whole sampling runs per side (after a warm-up), ending with the images on the host;
the two sides alternate run by run. Ours: sample() with parallel ${parallel === 'auto' ? "'auto' (the default: on the CPU each forward's batch is split into chunks that run at once on the torch threads)" : parallel}. Python / ours: the median of the ${runs} ratios of neighbouring runs, with
their quartiles in brackets (how much the machine's drift moves it).
Python: benchmarks/python/sample_loop.py (${pythonEager ? 'the eager module for every strategy (--python-eager); ' : 'TorchScript, frozen, for none/cfg/autoguidance; '}the eager module
with patched attention for pag/seg/cfg+pag, as diffusers does; for sag the same eager module keeping mid.attn's probabilities, and diffusers' sag_masking).
"in forwards": the share of our run spent awaiting model forwards (the rest is the sampler, the guidance
mix and the host copy). "cost vs unguided": ours / an unguided run of ours next to it, the median of ${runs} such
pairs with quartiles; "ideal" is the number of batch-${batch} model evaluations per step in the ideal plan.${cudaIndex >= 0 ? ' Peak MiB: the CUDA caching allocator\'s peak bytes in live tensors during a run (ours: cudaMemory(); Python: torch.cuda.max_memory_allocated).' : ''}

| strategy | ours ms | Python ms | Python / ours | cost vs unguided | ideal | in forwards |${cudaIndex >= 0 ? ' ours peak MiB | Python peak MiB |' : ''}
|---|---|---|---|---|---|---|${cudaIndex >= 0 ? '---|---|' : ''}
${lines.join('\n')}
`;
const deviceKind = device.replace(/:.*/, '');
mkdirSync(join(root, 'out'), { recursive: true });
writeFileSync(only ? join(root, 'out', `speed-${deviceKind}-partial.md`) : join(root, 'benchmarks', 'results', `speed-${deviceKind}.md`), report);
console.log(report);
