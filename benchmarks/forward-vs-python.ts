/**
 * One forward of a TorchScript model: this package (Node, async, on a torch
 * thread) next to Python torch on the same libtorch, in one run, alternating.
 *
 *   npx tsx benchmarks/forward-vs-python.ts [--quick] [--device cpu|cuda]
 *     [--model models/fixtures/tiny-unet.pt] [--batches 1,16,64] [--rounds 12]
 *
 * Writes benchmarks/results/forward-vs-python.md (forward-vs-python-cuda.md
 * on CUDA). The Python side runs the same .pt file, plain (torch.jit.load)
 * and frozen (torch.jit.freeze), each in a process kept up between blocks
 * (forward_loop.py --serve); the faster of the two is the baseline. Ours is
 * timed loaded with the attention and module hooks (the default) and without
 * (attentionHooks: false), which separates the hooks' cost from the rest of
 * the path (thread hop, promise). Same thread count on both sides; one
 * forward, no batch split (that is run()'s `parallel`, see batch-parallel.ts).
 *
 * Method: per round, a block of forwards on each of the four sides in a
 * rotating order; each ratio is taken within a round (block medians) and the
 * table gives the median over rounds with quartiles: neighbouring blocks see
 * the same machine drift, so the paired ratio is far steadier than a ratio
 * of medians taken minutes apart. On CUDA every timed forward ends with its
 * output on the host, both sides.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type DeviceName, type Model, type Tensor } from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor, quantile } from './cli.js';
import { startServe } from './python-loop.js';

const root = join(import.meta.dirname, '..');
const device = flag('device', 'cpu') as DeviceName;
const modelArg = flag('model', 'models/fixtures/tiny-unet.pt');
const modelPath = join(root, modelArg);
const python = pythonFor(device);
const quick = argv.includes('--quick');
/** Forwards per block, and rounds of blocks. */
const iterations = quick ? 4 : 8;
const rounds = Number(flag('rounds', quick ? '2' : '12'));
const batches = flag('batches', '1,16,64').split(',').map(Number);
const info = runtimeInfo();
const threads = info.intraOpThreads;

const model = await loadModel(modelPath, { device });
const unhooked = await loadModel(modelPath, { device, attentionHooks: false });
const onHost = device !== 'cpu';

/** Our side for one batch size: block() times `iterations` forwards and returns their median. */
function nodeSide(which: Model, batch: number) {
  const x = randn([batch, 1, 28, 28], { seed: 0, device });
  const t = tensor(new Float32Array(batch).fill(500), [batch], { device });
  const label = tensor(new BigInt64Array(batch).fill(3n), [batch], { device });
  const once = async () => {
    const start = performance.now();
    const out = (await which.forward(x, t, label)) as Tensor;
    if (onHost) await out.toArray();
    out.dispose();
    return performance.now() - start;
  };
  return {
    warm: async () => {
      for (let i = 0; i < 5; i++) await once();
    },
    block: async () => {
      const times: number[] = [];
      for (let i = 0; i < iterations; i++) times.push(await once());
      return median(times);
    },
    close: () => [x, t, label].forEach((h) => h.dispose()),
  };
}

/** A Python forward loop kept up between blocks (it warms up as it starts). */
async function pythonSide(batch: number, freeze: boolean) {
  const { ask, close } = await startServe(python, [join(root, 'benchmarks', 'python', 'forward_loop.py'), modelPath, String(batch),
    String(iterations), String(threads), '--device', device, '--serve', ...(freeze ? ['--freeze'] : [])]);
  return {
    warm: async () => {},
    block: async () => (await ask('run')).median_ms as number,
    close,
  };
}

const span = (values: number[], digits = 2) =>
  `${median(values).toFixed(digits)} (${quantile(values, 0.25).toFixed(digits)}-${quantile(values, 0.75).toFixed(digits)})`;

const rows: string[] = [];
for (const batch of batches) {
  const sides = [nodeSide(model, batch), nodeSide(unhooked, batch), await pythonSide(batch, false), await pythonSide(batch, true)];
  const blocks: number[][] = sides.map(() => []);
  try {
    for (const side of sides) await side.warm();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < sides.length; k++) {
        const which = (k + round) % sides.length; // rotate who goes first
        blocks[which]!.push(await sides[which]!.block());
      }
    }
  } finally {
    for (const side of sides) side.close();
  }
  const [ours, bare, plain, frozen] = blocks as [number[], number[], number[], number[]];
  // The baseline is the faster Python variant in each round.
  const ratio = ours.map((o, r) => Math.min(plain[r]!, frozen[r]!) / o);
  const hookCost = ours.map((o, r) => o / bare[r]!);
  rows.push(
    `| ${batch} | ${median(ours).toFixed(2)} | ${median(bare).toFixed(2)} | ${median(plain).toFixed(2)} | ` +
      `${median(frozen).toFixed(2)} | ${span(ratio)} | ${span(hookCost, 3)} |`,
  );
  console.log(rows.at(-1));
}
model.dispose();
unhooked.dispose();

const report = `# Forward: torch-guidance vs Python torch (${device})

Command: \`npx tsx benchmarks/forward-vs-python.ts${argv.length ? ' ' + argv.join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor(device)}  
libtorch: ${info.torchVersion} (${info.torchSource}); threads: ${threads} intra-op on both sides  
${blasFor({ python: true })}  
Model: ${modelArg}, ${device}, float32

Method: ${rounds} rounds; in each, a block of ${iterations} timed forwards on every side in a rotating order
(after 5 warm-up forwards per side). Ours is \`await model.forward(x, t, label)\` (torch thread, Promise),
with the hooks (default) and loaded with \`attentionHooks: false\`; Python is \`model(x, t, label)\` under
\`torch.inference_mode()\`, plain \`torch.jit.load\` and \`torch.jit.freeze\`d, each in a process kept up
between blocks.${onHost ? ' Each timed forward ends with the output on the host (toArray / .cpu()).' : ''}
Times: the median over rounds of the block medians. Ratio = faster Python / ours within each round (≥ 1:
we are at least as fast); hook cost = ours / ours without hooks within each round (target ≤ 1.03); both
the median over rounds with quartiles in brackets.

| batch | ours (ms) | ours, no hooks (ms) | Python plain (ms) | Python frozen (ms) | ratio | hook cost |
|---:|---:|---:|---:|---:|---|---|
${rows.join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', device === 'cpu' ? 'forward-vs-python.md' : 'forward-vs-python-cuda.md'), report);
console.log(report);
