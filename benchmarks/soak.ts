/**
 * Soak: many consecutive sampling runs, rotating through the strategies, must
 * keep the live-handle count constant and resident memory flat.
 *
 *   npx tsx --expose-gc benchmarks/soak.ts [--runs 500] [--model models/fixtures/tiny-unet.pt] [--device cpu]
 *
 * Writes benchmarks/results/soak-<device>.md. After a warm-up (the first 10 %
 * of runs: allocator pools, the profiling executor, V8's heap settle), RSS
 * must stay within 5 % of its value at the end of the warm-up. Exit code 1
 * when a check fails, so it can gate a long run in CI-like jobs.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { autoguidance, cfg, cudaMemory, icg, liveHandles, loadModel, pag, runtimeInfo, sag, sample, seg, type DeviceName, type Strategy } from '../src/index.js';
import { blasFor, flag } from './cli.js';

const root = join(import.meta.dirname, '..');
const runs = Number(flag('runs', '500'));
const modelPath = flag('model', 'models/fixtures/tiny-unet.pt');
const device = flag('device', 'cpu') as DeviceName;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.warn('soak: run with --expose-gc for steadier memory readings');

const model = await loadModel(join(root, modelPath), { device });
const guide = await loadModel(join(root, modelPath), { device });
const rotation: Strategy[][] = [[], [cfg()], [pag()], [seg({ sigma: 2 })], [sag()], [icg()], [autoguidance({ guide })], [cfg(), pag(), seg()]];
const samplers = ['euler', 'euler_ancestral', 'heun', 'dpmpp_2m', 'ddim'] as const;

const warmup = Math.max(1, Math.floor(runs / 10));
// On CUDA: the caching allocator's bytes in live tensors and its reserve, after each run.
const cudaIndex = device.startsWith('cuda') ? Number(device.split(':')[1] ?? 0) : -1;
const gpu = { afterWarmup: 0, maxAllocated: 0, minAllocated: Infinity, reservedAfterWarmup: 0, maxReserved: 0 };
const handlesAtStart = liveHandles();
let rssAfterWarmup = 0;
let maxRss = 0;
let minRss = Infinity;
let maxHandleDrift = 0;
const started = performance.now();
for (let i = 0; i < runs; i++) {
  const result = await sample({
    model,
    guidance: rotation[i % rotation.length]!,
    sampler: { name: samplers[i % samplers.length]!, steps: 3 },
    count: 4,
    batchSize: 3,
    seed: i,
  });
  await result.images.toArray();
  result.images.dispose();
  const handles = liveHandles();
  maxHandleDrift = Math.max(maxHandleDrift, Math.abs(handles.tensors - handlesAtStart.tensors), Math.abs(handles.models - handlesAtStart.models));
  if (i % 10 === 9) gc?.();
  const rss = process.memoryUsage().rss;
  if (i === warmup - 1) rssAfterWarmup = rss;
  if (i >= warmup) {
    maxRss = Math.max(maxRss, rss);
    minRss = Math.min(minRss, rss);
  }
  const memory = cudaIndex >= 0 ? cudaMemory(cudaIndex) : null;
  if (memory) {
    if (i === warmup - 1) {
      gpu.afterWarmup = memory.allocated;
      gpu.reservedAfterWarmup = memory.reserved;
    }
    if (i >= warmup) {
      gpu.maxAllocated = Math.max(gpu.maxAllocated, memory.allocated);
      gpu.minAllocated = Math.min(gpu.minAllocated, memory.allocated);
      gpu.maxReserved = Math.max(gpu.maxReserved, memory.reserved);
    }
  }
  if (i % 50 === 49) console.log(`run ${i + 1}/${runs}: rss ${(rss / 2 ** 20).toFixed(1)} MiB, tensors ${handles.tensors}`);
}
const seconds = (performance.now() - started) / 1000;
model.dispose();
guide.dispose();

const drift = (maxRss - rssAfterWarmup) / rssAfterWarmup;
const handlesOk = maxHandleDrift === 0;
const rssOk = drift <= 0.05;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const gpuMeasured = cudaIndex >= 0 && gpu.reservedAfterWarmup > 0;
const gpuDrift = gpuMeasured ? (gpu.maxReserved - gpu.reservedAfterWarmup) / gpu.reservedAfterWarmup : 0;
const gpuOk = !gpuMeasured || (gpu.maxAllocated === gpu.afterWarmup && gpuDrift <= 0.05);
const gpuRows = cudaIndex < 0 ? '' : gpuMeasured
  ? `| CUDA bytes in live tensors after each run (after warm-up: ${mib(gpu.afterWarmup)} MiB) | ${mib(gpu.minAllocated)}–${mib(gpu.maxAllocated)} MiB | ${gpu.maxAllocated === gpu.afterWarmup ? 'holds' : 'FAILS'} |
| CUDA allocator reserve, largest growth over the warm-up value (≤ 5 %) | ${mib(gpu.reservedAfterWarmup)} → max ${mib(gpu.maxReserved)} MiB (${(gpuDrift * 100).toFixed(2)} %) | ${gpuDrift <= 0.05 ? 'holds' : 'FAILS'} |
`
  : '| CUDA memory | this build cannot read the caching allocator (cudaMemory() is null) | not measured |\n';
const info = runtimeInfo();
const report = `# Soak: ${runs} consecutive sampling runs (${device})

Command: \`npx tsx --expose-gc benchmarks/soak.ts --runs ${runs} --model ${modelPath} --device ${device}\`
Date: ${new Date().toISOString()}
Machine: ${cudaIndex >= 0 ? `${info.cudaDevices[cudaIndex]?.model ?? 'CUDA device'}, ` : ''}${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}; libtorch ${info.torchVersion}  
${blasFor()}

Each run: 4 samples in batches of 3, 3 steps, rotating through ${rotation.length} guidance settings
(none, CFG, PAG, SEG, SAG, ICG, autoguidance, CFG+PAG+SEG) and ${samplers.length} samplers. ${seconds.toFixed(0)} s in all.

| check | result | |
|---|---|---|
| live tensor/model handles after every run vs before the first | max drift ${maxHandleDrift} | ${handlesOk ? 'holds' : 'FAILS'} |
| RSS after warm-up (${warmup} runs) | ${(rssAfterWarmup / 2 ** 20).toFixed(1)} MiB | |
| RSS range over the remaining runs | ${(minRss / 2 ** 20).toFixed(1)}–${(maxRss / 2 ** 20).toFixed(1)} MiB | |
| largest RSS growth over the warm-up value (≤ 5 %) | ${(drift * 100).toFixed(2)} % | ${rssOk ? 'holds' : 'FAILS'} |
${gpuRows}`;
writeFileSync(join(root, 'benchmarks', 'results', `soak-${device.replace(/:.*/, '')}.md`), report);
console.log(report);
process.exitCode = handlesOk && rssOk && gpuOk ? 0 : 1;
