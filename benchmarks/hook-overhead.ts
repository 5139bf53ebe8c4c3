/**
 * What the attention hooks cost when no plan is set: the same TorchScript
 * model loaded with the attention pass (hook ops around every site) and
 * without it (attentionHooks: false), timed side by side in one run.
 *
 *   npx tsx benchmarks/hook-overhead.ts [--quick]
 *
 * Writes benchmarks/results/hook-overhead.md. Target: hooked / plain <= 1.03.
 * Blocks alternate A B B A so that drift of a noisy machine hits both alike.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Model, type Tensor } from '../src/index.js';
import { median } from './cli.js';

const root = join(import.meta.dirname, '..');
const modelPath = join(root, 'models', 'fixtures', 'tiny-unet.pt');
const quick = process.argv.includes('--quick');
const perBlock = quick ? 5 : 15;
const rounds = quick ? 2 : 6;
const batches = [1, 16, 64];
const info = runtimeInfo();

const hooked = await loadModel(modelPath, { device: 'cpu' });
const plain = await loadModel(modelPath, { device: 'cpu', attentionHooks: false });

async function block(model: Model, inputs: Tensor[], into: number[]): Promise<void> {
  for (let i = 0; i < perBlock; i++) {
    const start = performance.now();
    const out = await model.forward<Tensor>(...inputs);
    into.push(performance.now() - start);
    out.dispose();
  }
}

const rows: string[] = [];
for (const batch of batches) {
  const inputs = [
    randn([batch, 1, 28, 28], { seed: 0 }),
    tensor(new Float32Array(batch).fill(500), [batch]),
    tensor(new BigInt64Array(batch).fill(3n), [batch]),
  ];
  const withHooks: number[] = [];
  const without: number[] = [];
  await block(hooked, inputs, []); // warm-up: the profiling executor specialises
  await block(plain, inputs, []);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [hooked, plain] : [plain, hooked];
    for (const model of order) await block(model, inputs, model === hooked ? withHooks : without);
  }
  const ratio = median(withHooks) / median(without);
  rows.push(`| ${batch} | ${median(without).toFixed(2)} | ${median(withHooks).toFixed(2)} | ${ratio.toFixed(3)} |`);
  console.log(rows.at(-1));
  for (const t of inputs) t.dispose();
}
hooked.dispose();
plain.dispose();

const report = `# Attention-hook overhead with no plan

Command: \`npx tsx benchmarks/hook-overhead.ts${quick ? ' --quick' : ''}\`
Date: ${new Date().toISOString()}
Machine: ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}, ${info.cudaAvailable ? 'CUDA' : 'CPU only'}
libtorch: ${info.torchVersion} (${info.torchSource}); ${info.intraOpThreads} intra-op threads
Model: models/fixtures/tiny-unet.pt (3 softmax attention sites, each wrapped in two hook ops), CPU, float32
Method: \`model.forward(...)\` on the model loaded with the attention pass and without it
(\`attentionHooks: false\`); ${rounds} rounds of ${perBlock} forwards per model, alternating A B B A, after a
warm-up block each; medians. Target: hooked / plain ≤ 1.03.

| batch | plain (ms) | hooked, no plan (ms) | hooked / plain |
|---:|---:|---:|---:|
${rows.join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', 'hook-overhead.md'), report);
console.log(report);
