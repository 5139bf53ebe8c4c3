/**
 * One forward of a TorchScript model: this package (Node, async, on a pool
 * thread) next to Python torch on the same libtorch, in one run, alternating.
 *
 *   npx tsx benchmarks/forward-vs-python.ts [--quick]
 *
 * Writes benchmarks/results/forward-vs-python.md. The Python side runs the
 * same .pt file, plain (torch.jit.load) and frozen (torch.jit.freeze); the
 * faster of the two is the baseline. Same thread count on both sides.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Tensor } from '../src/index.js';

const root = join(import.meta.dirname, '..');
const modelPath = join(root, 'models', 'fixtures', 'tiny-unet.pt');
const python = process.env.TORCH_GUIDANCE_PYTHON ?? '/usr/bin/python3';
const quick = process.argv.includes('--quick');
const iterations = quick ? 10 : 40;
const rounds = quick ? 1 : 3;
const batches = [1, 16, 64];
const info = runtimeInfo();
const threads = info.intraOpThreads;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const model = await loadModel(modelPath, { device: 'cpu' });

async function nodeRun(batch: number): Promise<number[]> {
  const x = randn([batch, 1, 28, 28], { seed: 0 });
  const t = tensor(new Float32Array(batch).fill(500), [batch]);
  const label = tensor(new BigInt64Array(batch).fill(3n), [batch]);
  const times: number[] = [];
  for (let i = 0; i < 5 + iterations; i++) {
    const start = performance.now();
    const out = (await model.forward(x, t, label)) as Tensor;
    if (i >= 5) times.push(performance.now() - start);
    out.dispose();
  }
  for (const h of [x, t, label]) h.dispose();
  return times;
}

function pythonRun(batch: number, freeze: boolean): number[] {
  const args = [join(root, 'benchmarks', 'python', 'forward_loop.py'), modelPath, String(batch), String(iterations), String(threads)];
  if (freeze) args.push('--freeze');
  return (JSON.parse(execFileSync(python, args, { encoding: 'utf8' })) as { times_ms: number[] }).times_ms;
}

const rows: string[] = [];
for (const batch of batches) {
  const ours: number[] = [];
  const plain: number[] = [];
  const frozen: number[] = [];
  for (let round = 0; round < rounds; round++) {
    ours.push(...(await nodeRun(batch)));
    plain.push(...pythonRun(batch, false));
    frozen.push(...pythonRun(batch, true));
  }
  const baseline = Math.min(median(plain), median(frozen));
  const ratio = baseline / median(ours);
  rows.push(
    `| ${batch} | ${median(ours).toFixed(2)} | ${median(plain).toFixed(2)} | ${median(frozen).toFixed(2)} | ${ratio.toFixed(2)} |`,
  );
  console.log(rows.at(-1));
}
model.dispose();

const report = `# Forward: torch-guidance vs Python torch

Command: \`npx tsx benchmarks/forward-vs-python.ts${quick ? ' --quick' : ''}\`
Date: ${new Date().toISOString()}
Machine: ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}, ${info.cudaAvailable ? 'CUDA' : 'CPU only'}
libtorch: ${info.torchVersion} (${info.torchSource}); threads: ${threads} intra-op on both sides
Model: models/fixtures/tiny-unet.pt (tiny UNet, 1×28×28, 42,769 parameters), CPU, float32
Method: median of ${iterations} timed forwards × ${rounds} alternating rounds after 5 warm-up forwards each;
ours is \`await model.forward(x, t, label)\` (pool thread, Promise); Python is \`model(x, t, label)\` under
\`torch.inference_mode()\`, plain \`torch.jit.load\` and \`torch.jit.freeze\`d. Ratio = faster Python / ours
(≥ 1 means we are at least as fast).

| batch | ours (ms) | Python plain (ms) | Python frozen (ms) | ratio |
|---:|---:|---:|---:|---:|
${rows.join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', 'forward-vs-python.md'), report);
console.log(report);
