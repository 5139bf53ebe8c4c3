/**
 * Which chunk size the CPU batch split should use on this machine: one
 * forward of the shipped UNet of `rows` samples, run as chunks of about 4, 8,
 * 12, 16, 32 samples (Model.run's `parallel: K`, K = rows / size) and as
 * `parallel: 'auto'` (chunks of at most AUTO_MAX_CHUNK) and whole, in
 * rotating order round by round; each variant's time over auto's in the same
 * round, median over the rounds.
 *
 *   npx tsx benchmarks/chunk-size.ts [--rounds 10] [--rows 32,64,128] [--sizes 4,8,12,16,32]
 *
 * Writes benchmarks/results/chunk-size-cpu.md. AUTO_MAX_CHUNK (12) was picked
 * on one 2-core AMD EPYC VM; this checks it on the machine at hand. Ratios
 * above 1 everywhere mean auto is the best choice here.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Tensor } from '../src/index.js';
import { AUTO_MAX_CHUNK, autoChunks } from '../src/model/batch-split.js';
import { blasFor, flag, machineFor, median, quantile } from './cli.js';

const root = join(import.meta.dirname, '..');
const rounds = Number(flag('rounds', '10'));
const rowCounts = flag('rows', '32,64,128').split(',').map(Number);
const sizes = flag('sizes', '4,8,12,16,32').split(',').map(Number);
const info = runtimeInfo();

const model = await loadModel(join(root, 'models', 'fashion-unet.pt'), { device: 'cpu' });

interface Variant {
  name: string;
  chunks: number;
}

interface Row {
  rows: number;
  variants: { name: string; chunks: number; ms: number; ratio: [number, number, number] }[];
}

function variantsFor(rows: number): Variant[] {
  const variants: Variant[] = [{ name: 'auto', chunks: autoChunks(rows, info.jobThreads) }];
  for (const size of sizes) {
    const chunks = Math.ceil(rows / size);
    if (chunks > 1 && chunks <= rows) variants.push({ name: `~${size}`, chunks });
  }
  variants.push({ name: 'whole', chunks: 1 });
  return variants;
}

async function measure(rows: number): Promise<Row> {
  const x = randn([rows, 1, 28, 28], { seed: rows });
  const t = tensor(new Float32Array(rows).fill(500), [rows]);
  const labels = tensor(BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % 10)), [rows]);
  const once = async (chunks: number) => {
    const start = performance.now();
    const { output } = await model.run<Tensor>({ inputs: [x, t, labels], parallel: chunks });
    const ms = performance.now() - start;
    output.dispose();
    return ms;
  };
  const variants = variantsFor(rows);
  const times = variants.map(() => [] as number[]);
  const ratios = variants.map(() => [] as number[]);
  try {
    for (const v of variants) await once(v.chunks); // warm-up: every shape once
    for (let round = 0; round < rounds; round++) {
      const ms: number[] = new Array(variants.length);
      for (let j = 0; j < variants.length; j++) {
        const i = (j + round) % variants.length; // rotate who goes first
        ms[i] = await once(variants[i]!.chunks);
      }
      ms.forEach((m, i) => {
        times[i]!.push(m);
        ratios[i]!.push(m / ms[0]!);
      });
    }
    return {
      rows,
      variants: variants.map((v, i) => ({
        ...v,
        ms: median(times[i]!),
        ratio: [median(ratios[i]!), quantile(ratios[i]!, 0.25), quantile(ratios[i]!, 0.75)],
      })),
    };
  } finally {
    for (const h of [x, t, labels]) h.dispose();
  }
}

const results: Row[] = [];
for (const rows of rowCounts) {
  const row = await measure(rows);
  results.push(row);
  console.log(`${rows} rows: ` + row.variants.map((v) => `${v.name} (${v.chunks}) ${v.ms.toFixed(1)} ms ×${v.ratio[0].toFixed(2)}`).join(', '));
}
model.dispose();

const cell = (r: [number, number, number]) => `${r[0].toFixed(2)} (${r[1].toFixed(2)}-${r[2].toFixed(2)})`;
const report = [
  '# Chunk size of the CPU batch split',
  '',
  `Command: \`npx tsx benchmarks/chunk-size.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\`  `,
  `Date: ${new Date().toISOString()}  `,
  `Machine: ${machineFor('cpu')}; libtorch ${info.torchVersion}; ${info.intraOpThreads} intra-op threads, ${info.jobThreads} torch threads  `,
  `${blasFor()}`,
  '',
  `models/fashion-unet.pt, one forward at t = 500 of the given rows (CFG's forward at batch N has 2N rows). ` +
    `"~S": \`run({ parallel: ceil(rows / S) })\`, chunks of about S samples; "auto": \`parallel: 'auto'\` ` +
    `(chunks of at most ${AUTO_MAX_CHUNK}, a multiple of the torch threads); "whole": \`parallel: 1\`. ` +
    `The variants run in rotating order, ${rounds} rounds; each cell: median ms, then time over auto's in the same ` +
    'round (median, quartiles). Above 1: slower than auto.',
  '',
  ...results.flatMap((r) => [
    `**${r.rows} rows**`,
    '',
    '| variant | chunks | ms | time / auto |',
    '|---|---:|---:|---|',
    ...r.variants.map((v) => `| ${v.name} | ${v.chunks} | ${v.ms.toFixed(1)} | ${cell(v.ratio)} |`),
    '',
  ]),
];
writeFileSync(join(root, 'benchmarks', 'results', 'chunk-size-cpu.md'), report.join('\n'));
console.log(report.join('\n'));
