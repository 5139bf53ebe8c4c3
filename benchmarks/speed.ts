/**
 * Guided sampling speed: this package next to a Python loop written the way
 * users write it (benchmarks/python/sample_loop.py), same TorchScript model,
 * same Euler sampler, sigmas, batch and strategy, in one run, alternating.
 *
 *   npx tsx benchmarks/speed.ts [--device cpu|cuda] [--batch 16] [--steps 20] [--quick]
 *
 * Writes benchmarks/results/speed-<device>.md. Columns: ms per sampling run
 * (median over runs), the ratio Python / ours (> 1: we are faster), and each
 * strategy's cost relative to unguided sampling next to its ideal (the number
 * of batch-N model evaluations per step).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
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
import { argv, flag, median } from './cli.js';

const root = join(import.meta.dirname, '..');
const quick = argv.includes('--quick');
const device = flag('device', 'cpu') as DeviceName;
const batch = Number(flag('batch', '16'));
const steps = Number(flag('steps', quick ? '6' : '20'));
const runs = quick ? 2 : 5;
const rounds = quick ? 1 : 2;
const python = process.env.TORCH_GUIDANCE_PYTHON ?? (device === 'cpu' ? '/usr/bin/python3' : 'python3');
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
  { name: 'sag', strategies: [sag()], ideal: 2, python: null },
  { name: 'autoguidance', strategies: [autoguidance({ guide, scale: 2 })], ideal: 2, python: 'autoguidance' },
  { name: 'cfg+pag', strategies: [cfg({ scale: 4 }), pag({ scale: 3 })], ideal: 3, python: 'cfg+pag' },
];

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
  });
  await result.images.toArray(); // end on the host, as the Python side does
  const elapsed = performance.now() - start;
  result.images.dispose();
  const peakBytes = cudaIndex >= 0 ? (cudaMemory(cudaIndex)?.peakAllocated ?? null) : null;
  return { ms: elapsed, forwardShare: result.timings.forwardMs / result.timings.totalMs, peakBytes };
}

async function ours(row: Row): Promise<OurRun[]> {
  await oursOnce(row); // warm-up
  const measured: OurRun[] = [];
  for (let i = 0; i < runs; i++) measured.push(await oursOnce(row));
  return measured;
}

function pythonSide(row: Row): { times: number[]; peak: number | null } {
  const args = [
    join(root, 'benchmarks', 'python', 'sample_loop.py'),
    '--model', modelPath, '--guide', guidePath, '--strategy', row.python!, '--batch', String(batch),
    '--sigmas', JSON.stringify(sigmas), '--runs', String(runs), '--threads', String(info.intraOpThreads), '--device', device,
  ];
  const out = JSON.parse(execFileSync(python, args, { encoding: 'utf8' })) as { times_ms: number[]; peak_bytes: number | null };
  return { times: out.times_ms, peak: out.peak_bytes };
}

const lines: string[] = [];
let unguided = 0;
for (const row of rows) {
  const mine: OurRun[] = [];
  const theirs: number[] = [];
  let theirPeak: number | null = null;
  for (let r = 0; r < rounds; r++) {
    mine.push(...(await ours(row)));
    if (row.python) {
      const side = pythonSide(row);
      theirs.push(...side.times);
      theirPeak = side.peak;
    }
  }
  const ourMs = median(mine.map((m) => m.ms));
  if (row.name === 'none') unguided = ourMs;
  const pyMs = theirs.length ? median(theirs) : NaN;
  const ratio = theirs.length ? (pyMs / ourMs).toFixed(2) : '—';
  const share = `${(100 * median(mine.map((m) => m.forwardShare))).toFixed(0)} %`;
  const mib = (bytes: number | null) => (bytes === null ? '—' : (bytes / 2 ** 20).toFixed(1));
  const memory = cudaIndex >= 0 ? ` ${mib(Math.max(...mine.map((m) => m.peakBytes ?? 0)))} | ${mib(theirPeak)} |` : '';
  const line = `| ${row.name} | ${ourMs.toFixed(1)} | ${theirs.length ? pyMs.toFixed(1) : '—'} | ${ratio} | ${(ourMs / unguided).toFixed(2)} | ${row.ideal} | ${share} |${memory}`;
  lines.push(line);
  console.log(line);
}
model.dispose();
guide.dispose();

const machine = info.cudaAvailable && device !== 'cpu' ? `${info.cudaDevices[0]?.model ?? 'CUDA device'}` : `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`;
const report = `# Guided sampling speed: torch-guidance vs a Python loop (${device})

Command: \`npx tsx benchmarks/speed.ts --device ${device} --batch ${batch} --steps ${steps}${quick ? ' --quick' : ''}\`
Date: ${new Date().toISOString()}
Machine: ${machine}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads on both sides
Model: models/fashion-unet.pt (guide: fashion-unet-weak.pt), Euler, ${steps} Karras steps, batch ${batch}.
Each cell: median of ${runs * rounds} whole sampling runs (after a warm-up), ending with the images on the host.
Python: benchmarks/python/sample_loop.py (TorchScript, frozen, for none/cfg/autoguidance; the eager module
with patched attention for pag/seg/cfg+pag, as diffusers does). SAG has no Python counterpart here.
"in forwards": the share of our run spent awaiting model forwards (the rest is the sampler, the guidance
mix and the host copy).${cudaIndex >= 0 ? ' Peak MiB: the CUDA caching allocator\'s peak bytes in live tensors during a run (ours: cudaMemory(); Python: torch.cuda.max_memory_allocated).' : ''}

| strategy | ours ms | Python ms | Python / ours | cost vs unguided | ideal | in forwards |${cudaIndex >= 0 ? ' ours peak MiB | Python peak MiB |' : ''}
|---|---|---|---|---|---|---|${cudaIndex >= 0 ? '---|---|' : ''}
${lines.join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', `speed-${device.replace(/:.*/, '')}.md`), report);
console.log(report);
