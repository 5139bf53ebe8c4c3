/**
 * A real-size latent model on the CPU: the SD 1.x-style UNet of
 * models/architectures (859.5M parameters, random weights) at 64x64 latents
 * with a [77, 768] text context and SD's VAE decoder, this package next to a
 * Python loop on the same TorchScript files, in one run, alternating.
 *
 *   npx tsx benchmarks/real-size.ts [--reps 2] [--files out/real-size]
 *
 * Exports the models first when they are not in --files
 * (benchmarks/python/export_real_size.py, a few minutes and 3.7 GB).
 * Writes benchmarks/results/real-size-cpu.md: load time (ours: the attention
 * pass, freezing and the probe; Python: torch.jit.load + freeze), one forward,
 * one guided denoising step per strategy (batch 1; the Python side is
 * benchmarks/python/sd_step.py), the CPU batch split at this size, the
 * decoder, and each side's peak resident memory.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { autoguidance, cfg, loadModel, pag, runtimeInfo, sag, sample, seg, tensor, type Model, type Strategy, type Tensor } from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor } from './cli.js';
import { startServe } from './python-loop.js';

const root = join(import.meta.dirname, '..');
const reps = Number(flag('reps', '2'));
const files = join(root, flag('files', join('out', 'real-size')));
const python = pythonFor('cpu');
const info = runtimeInfo();
const threads = info.intraOpThreads;
const MID = 'mid_block.attentions.0.transformer_blocks.0.attn1';

if (!existsSync(join(files, 'sd-vae.pt'))) {
  console.log(`exporting the full-size models into ${files} ...`);
  execFileSync(python, [join(root, 'benchmarks', 'python', 'export_real_size.py'), files], { stdio: 'inherit' });
}
const file = (name: string) => join(files, `${name}.pt`);

const timeIt = async (fn: () => Promise<unknown>) => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};
const fmt = (ms: number) => (ms / 1000).toFixed(2);

// Python first: its process loads and freezes the file (timed) and warms up.
const py = await startServe(python, [join(root, 'benchmarks', 'python', 'sd_step.py'), '--model', file('sd15'), '--guide', file('sd15-guide'),
  '--decoder', file('sd-vae'), '--threads', String(threads), '--serve']);
const pythonLoadMs = py.ready.load_ms as number;

const loads: number[] = [];
let model: Model | undefined;
for (let i = 0; i < reps; i++) {
  model?.dispose();
  let loaded: Model | undefined;
  loads.push(await timeIt(async () => (loaded = await loadModel(file('sd15'), { device: 'cpu' }))));
  model = loaded;
}
const unhookedMs = await timeIt(async () => (await loadModel(file('sd15'), { device: 'cpu', attentionHooks: false })).dispose());
const main = model!;
const guide = await loadModel(file('sd15-guide'), { device: 'cpu' });
const grids = [...new Set(main.attentionSites.map((s) => (s.grid ? s.grid.join('x') : 'unprobed')))].join(', ');

using context = tensor(new Float32Array(77 * 768).map(() => Math.random() - 0.5), [1, 77, 768]);
const forwardOnce = async (batch: number) => {
  const x = tensor(new Float32Array(batch * 4 * 64 * 64).map(() => Math.random()), [batch, 4, 64, 64]);
  const t = tensor(new Float32Array(batch).fill(999), [batch]);
  const c = context.repeat(batch);
  try {
    return await timeIt(async () => (await main.forward<Tensor>(x, t, c)).dispose());
  } finally {
    for (const h of [x, t, c]) h.dispose();
  }
};
await forwardOnce(1); // warm-up
const rows: string[] = [];
const pair = async (label: string, ours: () => Promise<number>, theirs: () => Promise<number>, note = '') => {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < reps; i++) {
    if (i % 2 === 0) {
      a.push(await ours());
      b.push(await theirs());
    } else {
      b.push(await theirs());
      a.push(await ours());
    }
  }
  const ratio = median(b.map((v, i) => v / a[i]!));
  rows.push(`| ${label} | ${fmt(median(a))} | ${fmt(median(b))} | ${ratio.toFixed(2)} | ${note} |`);
  console.log(rows.at(-1));
};

await pair('forward, batch 1', () => forwardOnce(1), async () => (await py.ask('forward 1')).ms as number);
await pair('forward, batch 2', () => forwardOnce(2), async () => (await py.ask('forward 2')).ms as number);

const strategies: [string, Strategy[]][] = [
  ['none', []],
  ['cfg', [cfg({ scale: 7.5 })]],
  ['pag', [pag({ scale: 3 })]],
  ['seg', [seg({ scale: 3 })]],
  ['sag', [sag({ scale: 0.75 })]],
  ['cfg+pag', [cfg({ scale: 7.5 }), pag({ scale: 3 })]],
  ['autoguidance', [autoguidance({ guide, scale: 2 })]],
];
const step = (guidance: Strategy[], parallel: number | 'auto' = 'auto') => () =>
  timeIt(async () => {
    const result = await sample({ model: main, guidance, conditions: { encoder_hidden_states: context }, sampler: { name: 'euler', steps: 1 }, decode: false, parallel, checkFinite: false });
    result.images.dispose();
  });
for (const [name, guidance] of strategies) {
  await pair(`step: ${name}`, step(guidance), async () => (await py.ask(`step ${name}`)).ms as number, name === 'none' ? '' : `sites: ${name === 'autoguidance' || name === 'cfg' ? '-' : MID}`);
}
// The CPU batch split at this size: CFG's batch-2 forward split in two chunks or whole.
const splitWhole: number[] = [];
const splitAuto: number[] = [];
for (let i = 0; i < reps; i++) {
  splitWhole.push(await step([cfg({ scale: 7.5 })], 1)());
  splitAuto.push(await step([cfg({ scale: 7.5 })], 'auto')());
}
const decoder = (await main.loadDecoder())!;
await pair('decoder, one 64x64 latent', async () => {
  const z = tensor(new Float32Array(4 * 64 * 64).map(() => Math.random()), [1, 4, 64, 64]);
  try {
    return await timeIt(async () => (await decoder.run<Tensor>({ inputs: [z] })).output.dispose());
  } finally {
    z.dispose();
  }
}, async () => (await py.ask('decode')).ms as number);

const pyPeak = (await py.ask('peaks')).peak_rss_bytes as number;
py.close();
const ourPeak = process.resourceUsage().maxRSS * 1024;
guide.dispose();
main.dispose();

const report = `# A real-size latent model on the CPU: torch-guidance vs a Python loop

Command: \`npx tsx benchmarks/real-size.ts${argv.length ? ' ' + argv.join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor('cpu')}; libtorch ${info.torchVersion} (${info.torchSource}); ${threads} intra-op threads on both sides  
${blasFor({ python: true })}  
Model: models/architectures/sd_unet.py \`sd15\` (859,520,964 parameters, random weights), scripted by scripts/export,
64x64 latents, a [1, 77, 768] text context, the empty-prompt null stored in the archive; guide for autoguidance: \`sd15-narrow\`;
decoder: models/architectures/vae_decoder.py \`sd-vae\` (64x64 latents to 512x512 images, traced).

Python side: benchmarks/python/sd_step.py. none, cfg and autoguidance run the frozen TorchScript files; PAG, SEG and SAG
run the eager module with the file's weights and the mid block's attn1 patched per batch slice (diffusers' way), as
TorchScript cannot be perturbed from Python. Ours: \`sample()\` with one Euler step (batch 1, \`parallel: 'auto'\`,
decode off), the card's default sites (\`${MID}\`).
Each cell: the median of ${reps} runs per side, alternating; ratio = Python / ours (above 1: we are faster).

## Load

| | seconds |
|---|---:|
| Python: \`torch.jit.load\` + \`torch.jit.freeze\` | ${fmt(pythonLoadMs)} |
| ours: \`loadModel\` (scan, attention pass, freeze, probe at 1/8 and 1/4 size), median of ${reps} | ${fmt(median(loads))} |
| ours, \`attentionHooks: false\` | ${fmt(unhookedMs)} |
| ours / Python | ${(median(loads) / pythonLoadMs).toFixed(2)} |

Sites: ${main.attentionSites.length}, query grids ${grids}.

## Forward, guided step, decoder

| | ours (s) | Python (s) | Python / ours | |
|---|---:|---:|---:|---|
${rows.join('\n')}

## The batch split at this size

CFG step (one batch-2 forward): whole (\`parallel: 1\`) ${fmt(median(splitWhole))} s, split (\`parallel: 'auto'\`) ${fmt(median(splitAuto))} s;
split / whole = ${(median(splitAuto) / median(splitWhole)).toFixed(2)}.

## Peak resident memory

ours ${(ourPeak / 2 ** 30).toFixed(2)} GiB (the whole benchmark process: the UNet, the guide, the decoder); Python
${(pyPeak / 2 ** 30).toFixed(2)} GiB (its process: the frozen file, the eager copy for PAG/SEG/SAG, the guide, the decoder).
`;
writeFileSync(join(root, 'benchmarks', 'results', 'real-size-cpu.md'), report);
console.log(report);
