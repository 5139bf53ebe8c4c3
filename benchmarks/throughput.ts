/**
 * Samples per second against batch size for CFG, this package next to the
 * Python loop (benchmarks/python/sample_loop.py), same model, sampler and
 * sigmas, batch 1 to 256, with a chart.
 *
 *   npx tsx benchmarks/throughput.ts [--device cpu|cuda] [--steps 4] [--max-batch 256] [--runs 4] [--quick]
 *
 * Writes benchmarks/results/throughput-<device>.md and throughput-<device>.png.
 * Three sides per batch size, alternating run by run (the Python loop stays up
 * between runs): ours as sample() runs by default (on the CPU each forward
 * split across the torch threads, `parallel: 'auto'`), ours with
 * `parallel: 1` (one forward per batch, as the Python loop does), and Python.
 * Each point: the median of `runs` sampling runs of one batch (64 / batch
 * where that is more: small batches are short and noisy) after a warm-up, ending with the images on the host; the ratio is the median of the
 * paired ratios. samples/s scales as 1/steps, so a few steps are enough to
 * compare batch sizes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { cfg, loadModel, noiseScheduleFromCard, runtimeInfo, sample, sigmasFor, type DenoiserCard, type DeviceName } from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor } from './cli.js';
import { startPythonLoop } from './python-loop.js';
import { writeChart } from './quality/plots.js';

const root = join(import.meta.dirname, '..');
const quick = argv.includes('--quick');
const device = flag('device', 'cpu') as DeviceName;
const steps = Number(flag('steps', quick ? '2' : '4'));
const maxBatch = Number(flag('max-batch', quick ? '16' : '256'));
/** Paired runs at batch ≥ 16; smaller batches get more (64 / batch), since a run of a few samples is short and noisy. */
const runs = Number(flag('runs', quick ? '1' : '4'));
const runsFor = (batch: number) => (quick ? runs : Math.max(runs, Math.ceil(64 / batch)));
const python = pythonFor(device);
const info = runtimeInfo();
const modelPath = join(root, 'models', 'fashion-unet.pt');
const model = await loadModel(modelPath, { device });
const sigmas = sigmasFor({ kind: 'karras', rho: 7 }, steps, noiseScheduleFromCard(model.card as DenoiserCard));
const batches: number[] = [];
for (let b = 1; b <= maxBatch; b *= 2) batches.push(b);

async function oursOnce(batch: number, parallel: 'auto' | 1): Promise<number> {
  const start = performance.now();
  const result = await sample({
    model,
    guidance: [cfg({ scale: 4 })],
    sampler: { name: 'euler', steps, schedule: { kind: 'karras', rho: 7 } },
    labels: Array.from({ length: batch }, (_, i) => i % 10),
    seed: 0,
    batchSize: batch,
    parallel,
  });
  await result.images.toArray();
  result.images.dispose();
  return performance.now() - start;
}

interface Row {
  batch: number;
  /** samples/s */
  ours: number;
  oursWhole: number;
  python: number;
  /** Median of paired ratios: ours / Python, and split / whole. */
  oursOverPython: number;
  splitGain: number;
}

const rows: Row[] = [];
for (const batch of batches) {
  const loop = await startPythonLoop({ python, model: modelPath, strategy: 'cfg', batch, sigmas, threads: info.intraOpThreads, device });
  const mine: number[] = [];
  const whole: number[] = [];
  const theirs: number[] = [];
  try {
    await oursOnce(batch, 'auto'); // warm-up: the executor specialises for the shapes
    await oursOnce(batch, 1);
    for (let i = 0; i < runsFor(batch); i++) {
      // Rotate the order, so no side always runs after the same one.
      const order = [0, 1, 2].map((k) => (k + i) % 3);
      for (const side of order) {
        if (side === 0) mine.push(await oursOnce(batch, 'auto'));
        else if (side === 1) whole.push(await oursOnce(batch, 1));
        else theirs.push(await loop.run());
      }
    }
  } finally {
    loop.close();
  }
  const perSecond = (ms: number) => (batch * 1000) / ms;
  const row: Row = {
    batch,
    ours: perSecond(median(mine)),
    oursWhole: perSecond(median(whole)),
    python: perSecond(median(theirs)),
    oursOverPython: median(theirs.map((t, i) => t / mine[i]!)),
    splitGain: median(whole.map((w, i) => w / mine[i]!)),
  };
  rows.push(row);
  console.log(
    `batch ${batch}: ours ${row.ours.toFixed(1)}, ours parallel 1 ${row.oursWhole.toFixed(1)}, Python ${row.python.toFixed(1)} samples/s; ` +
      `ours / Python ${row.oursOverPython.toFixed(2)}, split gain ${row.splitGain.toFixed(2)}`,
  );
}
model.dispose();

const name = `throughput-${device.replace(/:.*/, '')}`;
const points = (pick: (r: Row) => number) => rows.map((r) => ({ x: Math.log2(r.batch), y: pick(r) }));
await writeChart(join(root, 'benchmarks', 'results', `${name}.png`), {
  title: `CFG sampling throughput (${device}, ${steps} Euler steps)`,
  xLabel: 'log2(batch size)',
  yLabel: 'samples per second',
  series: [
    { name: 'torch-guidance', color: [31, 119, 180], dashed: false, points: points((r) => r.ours) },
    ...(device === 'cpu'
      ? [{ name: 'torch-guidance, parallel 1', color: [44, 160, 44] as [number, number, number], dashed: false, points: points((r) => r.oursWhole) }]
      : []),
    { name: 'Python loop', color: [255, 127, 14], dashed: true, points: points((r) => r.python) },
  ],
});
const report = `# CFG sampling throughput against batch size (${device})

Command: \`npx tsx benchmarks/throughput.ts${argv.length ? ' ' + argv.join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor(device)}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads on both sides (ours: shared by the chunks of a split forward that run at once), ${info.jobThreads} torch threads (ours)  
${blasFor({ python: true })}

Model: models/fashion-unet.pt, CFG scale 4 (one batched forward of 2N per step), Euler, ${steps} Karras steps.
Each point: median of ${runs} sampling runs of one batch (${quick ? runs : 'more below batch 16: 64 / batch'}) after a warm-up, ending with the images on the host;
the three sides alternate run by run and the ratios are medians of the paired ratios.
"ours": sample() as it runs by default (on the CPU: each forward split across the torch threads, \`parallel: 'auto'\`);
"ours, parallel 1": one forward per batch, as the Python loop runs it.
Python: benchmarks/python/sample_loop.py --strategy cfg (TorchScript, frozen). Chart: ${name}.png.

| batch | ours (samples/s) | ours, parallel 1 | Python | ours / Python | split gain |
|---:|---:|---:|---:|---:|---:|
${rows.map((r) => `| ${r.batch} | ${r.ours.toFixed(1)} | ${r.oursWhole.toFixed(1)} | ${r.python.toFixed(1)} | ${r.oursOverPython.toFixed(2)} | ${r.splitGain.toFixed(2)} |`).join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', `${name}.md`), report);
console.log(report);
