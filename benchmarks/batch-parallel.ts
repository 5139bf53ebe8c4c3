/**
 * What splitting a forward's batch across the torch threads buys on the CPU
 * (Model.run's `parallel`, sample()'s default): the time of one forward of
 * the whole batch over the time of the same batch as `parallel` chunks run at
 * once, per batch size, measured in interleaved pairs (the two variants
 * alternate call by call, so the machine's drift hits both alike).
 *
 *   npx tsx benchmarks/batch-parallel.ts [--pairs 15] [--batches 2,8,16,32,64] [--parallel 2]
 *
 * Writes benchmarks/results/batch-parallel.md. The model is the shipped
 * fashion-unet at a mid-schedule time; the PAG column runs the identity hook
 * on the second half, as a PAG step's 2N batch does. The last column is why
 * the split pays: what the intra-op threads give one forward, measured in
 * Python torch on the same libtorch (benchmarks/python/intraop_scaling.py:
 * 1 thread vs the intra-op count, alternating forward by forward).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Hook, type Tensor } from '../src/index.js';
import { blasFor, flag, machineFor, median, pythonFor, quantile } from './cli.js';

const root = join(import.meta.dirname, '..');
const pairs = Number(flag('pairs', '15'));
const batches = flag('batches', '2,8,16,32,64').split(',').map(Number);
const info = runtimeInfo();
const parallel = Number(flag('parallel', String(info.jobThreads)));

const modelPath = join(root, 'models', 'fashion-unet.pt');
const model = await loadModel(modelPath, { device: 'cpu' });

/** Python: one forward with 1 intra-op thread over one with the configured count (> 1: the threads help). */
function intraOpSpeedup(batch: number): number {
  const script = join(root, 'benchmarks', 'python', 'intraop_scaling.py');
  const out = execFileSync(pythonFor('cpu'), [script, modelPath, String(batch), String(pairs), String(info.intraOpThreads)], { encoding: 'utf8' });
  return (JSON.parse(out) as { speedup: number }).speedup;
}

interface Row {
  batch: number;
  wholeMs: number;
  splitMs: number;
  /** Median and quartiles of whole / split over the pairs. */
  speedup: [number, number, number];
  pagSpeedup: number;
  intraOp: number;
}

async function measure(batch: number): Promise<Row> {
  const x = randn([batch, 1, 28, 28], { seed: batch });
  const t = tensor(new Float32Array(batch).fill(500), [batch]);
  const labels = tensor(BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % 10)), [batch]);
  const half = Math.floor(batch / 2);
  const pagHooks: Hook[] = [{ sites: '**.mid.*', action: 'identity', start: half, length: batch - half }];
  const once = async (chunks: number, hooks: Hook[] = []) => {
    const start = performance.now();
    const { output } = await model.run<Tensor>({ inputs: [x, t, labels], hooks, parallel: chunks });
    const ms = performance.now() - start;
    output.dispose();
    return ms;
  };
  try {
    for (let i = 0; i < 3; i++) for (const k of [1, parallel]) await once(k);
    /** Times `a` and `b` back to back, `a` first on even pairs, `b` first on odd ones. */
    const pair = async (i: number, a: () => Promise<number>, b: () => Promise<number>): Promise<[number, number]> => {
      if (i % 2 === 0) {
        const ta = await a();
        return [ta, await b()];
      }
      const tb = await b();
      return [await a(), tb];
    };
    const whole: number[] = [];
    const split: number[] = [];
    const ratios: number[] = [];
    const pagRatios: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const [w, s] = await pair(i, () => once(1), () => once(parallel));
      whole.push(w);
      split.push(s);
      ratios.push(w / s);
      const [pw, ps] = await pair(i, () => once(1, pagHooks), () => once(parallel, pagHooks));
      pagRatios.push(pw / ps);
    }
    return {
      batch,
      wholeMs: median(whole),
      splitMs: median(split),
      speedup: [median(ratios), quantile(ratios, 0.25), quantile(ratios, 0.75)],
      pagSpeedup: median(pagRatios),
      intraOp: intraOpSpeedup(batch),
    };
  } finally {
    for (const h of [x, t, labels]) h.dispose();
  }
}

const rows: Row[] = [];
for (const batch of batches) {
  const row = await measure(batch);
  rows.push(row);
  console.log(`batch ${batch}: whole ${row.wholeMs.toFixed(1)} ms, ${parallel} chunks ${row.splitMs.toFixed(1)} ms, ` +
    `whole/split ${row.speedup[0].toFixed(2)} (${row.speedup[1].toFixed(2)}-${row.speedup[2].toFixed(2)}), PAG ${row.pagSpeedup.toFixed(2)}, ` +
    `Python ${info.intraOpThreads} threads vs 1: ${row.intraOp.toFixed(2)}`);
}
model.dispose();

const report = [
  '# Splitting a forward across the torch threads (CPU)',
  '',
  `Command: \`npx tsx benchmarks/batch-parallel.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\`  `,
  `Date: ${new Date().toISOString()}  `,
  `Machine: ${machineFor('cpu')}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads, ${info.jobThreads} torch threads  `,
  `${blasFor({ python: true })}`,
  '',
  `models/fashion-unet.pt, one forward at t = 500. "whole": \`run({ parallel: 1 })\`, one forward of the batch; "split": ` +
    `\`run({ parallel: ${parallel} })\`, the batch as ${parallel} chunks run at once (sample()'s default on the CPU). ` +
    `Each ratio: the median over ${pairs} interleaved pairs, quartiles in brackets; > 1: the split is faster. ` +
    'PAG: the same with the identity hook on the second half of the batch. ' +
    `Last column: how much faster one forward runs in Python torch with ${info.intraOpThreads} intra-op threads than with 1 ` +
    '(benchmarks/python/intraop_scaling.py, interleaved pairs): what the split makes up for.',
  '',
  `| batch | whole ms | split ms | whole / split | PAG whole / split | Python: ${info.intraOpThreads} threads vs 1 |`,
  '|---:|---:|---:|---|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.batch} | ${r.wholeMs.toFixed(1)} | ${r.splitMs.toFixed(1)} | ${r.speedup[0].toFixed(2)} (${r.speedup[1].toFixed(2)}-${r.speedup[2].toFixed(2)}) | ${r.pagSpeedup.toFixed(2)} | ${r.intraOp.toFixed(2)} |`,
  ),
  '',
];
writeFileSync(join(root, 'benchmarks', 'results', 'batch-parallel.md'), report.join('\n'));
console.log(report.join('\n'));
