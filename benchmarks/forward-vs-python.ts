/**
 * One forward of a TorchScript model: this package (Node, async, on a pool
 * thread) next to Python torch on the same libtorch, in one run, alternating.
 *
 *   npx tsx benchmarks/forward-vs-python.ts [--quick] [--device cpu|cuda]
 *     [--model models/fixtures/tiny-unet.pt] [--batches 1,16,64]
 *
 * Writes benchmarks/results/forward-vs-python.md (forward-vs-python-cuda.md
 * on CUDA). The Python side runs the same .pt file, plain (torch.jit.load)
 * and frozen (torch.jit.freeze); the faster of the two is the baseline. Same
 * thread count on both sides. Ours is timed twice, loaded with the attention
 * and module hooks (the default) and without (attentionHooks: false), which
 * separates the hooks' cost from the rest of the path (thread hop, promise).
 * On CUDA every timed forward ends with its output on the host, both sides.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type DeviceName, type Model, type Tensor } from '../src/index.js';
import { argv, flag, median, pythonFor } from './cli.js';

const root = join(import.meta.dirname, '..');
const device = flag('device', 'cpu') as DeviceName;
const modelArg = flag('model', 'models/fixtures/tiny-unet.pt');
const modelPath = join(root, modelArg);
const python = pythonFor(device);
const quick = argv.includes('--quick');
const iterations = quick ? 10 : 40;
const rounds = quick ? 1 : 3;
const batches = flag('batches', '1,16,64').split(',').map(Number);
const info = runtimeInfo();
const threads = info.intraOpThreads;

const model = await loadModel(modelPath, { device });
const unhooked = await loadModel(modelPath, { device, attentionHooks: false });
const onHost = device !== 'cpu';

async function nodeRun(which: Model, batch: number): Promise<number[]> {
  const x = randn([batch, 1, 28, 28], { seed: 0, device });
  const t = tensor(new Float32Array(batch).fill(500), [batch], { device });
  const label = tensor(new BigInt64Array(batch).fill(3n), [batch], { device });
  const times: number[] = [];
  for (let i = 0; i < 5 + iterations; i++) {
    const start = performance.now();
    const out = (await which.forward(x, t, label)) as Tensor;
    if (onHost) await out.toArray();
    if (i >= 5) times.push(performance.now() - start);
    out.dispose();
  }
  for (const h of [x, t, label]) h.dispose();
  return times;
}

function pythonRun(batch: number, freeze: boolean): number[] {
  const args = [join(root, 'benchmarks', 'python', 'forward_loop.py'), modelPath, String(batch), String(iterations), String(threads),
    '--device', device];
  if (freeze) args.push('--freeze');
  return (JSON.parse(execFileSync(python, args, { encoding: 'utf8' })) as { times_ms: number[] }).times_ms;
}

const rows: string[] = [];
for (const batch of batches) {
  const ours: number[] = [];
  const oursNoHooks: number[] = [];
  const plain: number[] = [];
  const frozen: number[] = [];
  for (let round = 0; round < rounds; round++) {
    ours.push(...(await nodeRun(model, batch)));
    oursNoHooks.push(...(await nodeRun(unhooked, batch)));
    plain.push(...pythonRun(batch, false));
    frozen.push(...pythonRun(batch, true));
  }
  const baseline = Math.min(median(plain), median(frozen));
  const ratio = baseline / median(ours);
  rows.push(
    `| ${batch} | ${median(ours).toFixed(2)} | ${median(oursNoHooks).toFixed(2)} | ${median(plain).toFixed(2)} | ` +
      `${median(frozen).toFixed(2)} | ${ratio.toFixed(2)} | ${(median(ours) / median(oursNoHooks)).toFixed(3)} |`,
  );
  console.log(rows.at(-1));
}
model.dispose();
unhooked.dispose();

const machine = onHost ? `${info.cudaDevices[0]?.model ?? 'CUDA device'}, CPU ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`
  : `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}, CPU only`;
const command = `npx tsx benchmarks/forward-vs-python.ts${quick ? ' --quick' : ''}${device !== 'cpu' ? ` --device ${device}` : ''}` +
  `${modelArg !== 'models/fixtures/tiny-unet.pt' ? ` --model ${modelArg}` : ''}${argv.includes('--batches') ? ` --batches ${batches.join(',')}` : ''}`;
const report = `# Forward: torch-guidance vs Python torch (${device})

Command: \`${command}\`
Date: ${new Date().toISOString()}
Machine: ${machine}
libtorch: ${info.torchVersion} (${info.torchSource}); threads: ${threads} intra-op on both sides
Model: ${modelArg}, ${device}, float32
Method: median of ${iterations} timed forwards × ${rounds} alternating rounds after 5 warm-up forwards each;
ours is \`await model.forward(x, t, label)\` (torch thread, Promise), with the hooks (default) and loaded with
\`attentionHooks: false\`; Python is \`model(x, t, label)\` under \`torch.inference_mode()\`, plain
\`torch.jit.load\` and \`torch.jit.freeze\`d.${onHost ? ' Each timed forward ends with the output on the host (toArray / .cpu()).' : ''}
Ratio = faster Python / ours (≥ 1 means we are at least as fast); hook cost = ours / ours without hooks
(target ≤ 1.03).

| batch | ours (ms) | ours, no hooks (ms) | Python plain (ms) | Python frozen (ms) | ratio | hook cost |
|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', device === 'cpu' ? 'forward-vs-python.md' : 'forward-vs-python-cuda.md'), report);
console.log(report);
