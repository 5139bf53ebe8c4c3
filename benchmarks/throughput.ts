/**
 * Samples per second against batch size for CFG, this package next to the
 * Python loop (benchmarks/python/sample_loop.py), same model, sampler and
 * sigmas, batch 1 to 256, with a chart.
 *
 *   npx tsx benchmarks/throughput.ts [--device cpu|cuda] [--steps 4] [--max-batch 256] [--quick]
 *
 * Writes benchmarks/results/throughput-<device>.md and throughput-<device>.png.
 * Each point: the median of `runs` sampling runs of one batch (after a
 * warm-up), ending with the images on the host. samples/s scales as 1/steps,
 * so a few steps are enough to compare batch sizes.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { cfg, loadModel, noiseScheduleFromCard, runtimeInfo, sample, sigmasFor, type DenoiserCard, type DeviceName } from '../src/index.js';
import { argv, flag, median, pythonFor } from './cli.js';
import { writeChart } from './quality/plots.js';

const root = join(import.meta.dirname, '..');
const quick = argv.includes('--quick');
const device = flag('device', 'cpu') as DeviceName;
const steps = Number(flag('steps', quick ? '2' : '4'));
const maxBatch = Number(flag('max-batch', quick ? '16' : '256'));
const runs = quick ? 1 : 3;
const python = pythonFor(device);
const info = runtimeInfo();
const modelPath = join(root, 'models', 'fashion-unet.pt');
const model = await loadModel(modelPath, { device });
const sigmas = sigmasFor({ kind: 'karras', rho: 7 }, steps, noiseScheduleFromCard(model.card as DenoiserCard));
const batches: number[] = [];
for (let b = 1; b <= maxBatch; b *= 2) batches.push(b);

async function oursOnce(batch: number): Promise<number> {
  const start = performance.now();
  const result = await sample({
    model,
    guidance: [cfg({ scale: 4 })],
    sampler: { name: 'euler', steps, schedule: { kind: 'karras', rho: 7 } },
    labels: Array.from({ length: batch }, (_, i) => i % 10),
    seed: 0,
    batchSize: batch,
  });
  await result.images.toArray();
  result.images.dispose();
  return performance.now() - start;
}

function pythonMs(batch: number): number {
  const args = [join(root, 'benchmarks', 'python', 'sample_loop.py'), '--model', modelPath, '--strategy', 'cfg', '--batch', String(batch),
    '--sigmas', JSON.stringify(sigmas), '--runs', String(runs), '--threads', String(info.intraOpThreads), '--device', device];
  return median((JSON.parse(execFileSync(python, args, { encoding: 'utf8' })) as { times_ms: number[] }).times_ms);
}

const rows: { batch: number; ours: number; python: number }[] = [];
for (const batch of batches) {
  await oursOnce(batch); // warm-up: the executor specialises for the shape
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await oursOnce(batch));
  const ours = (batch * 1000) / median(times);
  const theirs = (batch * 1000) / pythonMs(batch);
  rows.push({ batch, ours, python: theirs });
  console.log(`batch ${batch}: ours ${ours.toFixed(1)} samples/s, Python ${theirs.toFixed(1)} samples/s`);
}
model.dispose();

const name = `throughput-${device.replace(/:.*/, '')}`;
await writeChart(join(root, 'benchmarks', 'results', `${name}.png`), {
  title: `CFG sampling throughput (${device}, ${steps} Euler steps)`,
  xLabel: 'log2(batch size)',
  yLabel: 'samples per second',
  series: [
    { name: 'torch-guidance', color: [31, 119, 180], dashed: false, points: rows.map((r) => ({ x: Math.log2(r.batch), y: r.ours })) },
    { name: 'Python loop', color: [255, 127, 14], dashed: true, points: rows.map((r) => ({ x: Math.log2(r.batch), y: r.python })) },
  ],
});
const machine = device === 'cpu' ? `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}` : (info.cudaDevices[0]?.model ?? 'CUDA device');
const report = `# CFG sampling throughput against batch size (${device})

Command: \`npx tsx benchmarks/throughput.ts${device !== 'cpu' ? ` --device ${device}` : ''}${quick ? ' --quick' : ''}\`
Date: ${new Date().toISOString()}
Machine: ${machine}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads on both sides
Model: models/fashion-unet.pt, CFG scale 4 (one batched forward of 2N per step), Euler, ${steps} Karras steps.
Each point: median of ${runs} sampling runs of one batch after a warm-up, ending with the images on the host;
Python: benchmarks/python/sample_loop.py --strategy cfg (TorchScript, frozen). Chart: ${name}.png.

| batch | ours (samples/s) | Python (samples/s) | ours / Python |
|---:|---:|---:|---:|
${rows.map((r) => `| ${r.batch} | ${r.ours.toFixed(1)} | ${r.python.toFixed(1)} | ${(r.ours / r.python).toFixed(2)} |`).join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', `${name}.md`), report);
console.log(report);
