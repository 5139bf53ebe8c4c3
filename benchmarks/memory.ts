/**
 * Peak memory per strategy on the CPU: each strategy's sampling run in a
 * fresh process, this package next to the Python loop, peak resident memory
 * (the kernel's high-water mark, getrusage maxrss) of each process.
 *
 *   npx tsx benchmarks/memory.ts [--batch 64] [--steps 2]
 *
 * Writes benchmarks/results/memory-cpu.md. (On CUDA, benchmarks/speed.ts
 * reports the caching allocator's peak per strategy.) A fresh process per
 * strategy, because a high-water mark never comes down: what each column
 * shows is what a process that runs only that strategy needs at its peak.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  autoguidance, cfg, loadModel, noiseScheduleFromCard, pag, runtimeInfo, sag, sample, seg, sigmasFor, type DenoiserCard, type Strategy,
} from '../src/index.js';
import { argv, blasFor, flag, machineFor, pythonFor } from './cli.js';

const root = join(import.meta.dirname, '..');
const batch = Number(flag('batch', '64'));
const steps = Number(flag('steps', '2'));
const modelPath = join(root, 'models', 'fashion-unet.pt');
const guidePath = join(root, 'models', 'fashion-unet-weak.pt');
const python = pythonFor('cpu');
const names = ['none', 'cfg', 'pag', 'seg', 'sag', 'autoguidance', 'cfg+pag'] as const;
type Name = (typeof names)[number];
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

async function child(name: Name, parallel: 'auto' | 1): Promise<void> {
  const model = await loadModel(modelPath, { device: 'cpu' });
  const guide = name === 'autoguidance' ? await loadModel(guidePath, { device: 'cpu' }) : undefined;
  const strategies: Record<Name, Strategy[]> = {
    none: [], cfg: [cfg({ scale: 4 })], pag: [pag({ scale: 3 })], seg: [seg({ scale: 3, sigma: 10 })], sag: [sag()],
    autoguidance: guide ? [autoguidance({ guide, scale: 2 })] : [], 'cfg+pag': [cfg({ scale: 4 }), pag({ scale: 3 })],
  };
  const loaded = process.memoryUsage().rss;
  const result = await sample({
    model, guidance: strategies[name], sampler: { name: 'euler', steps, schedule: { kind: 'karras', rho: 7 } },
    labels: Array.from({ length: batch }, (_, i) => i % 10), seed: 0, batchSize: batch, parallel,
  });
  await result.images.toArray();
  result.images.dispose();
  console.log(JSON.stringify({ loaded, peak: process.resourceUsage().maxRSS * 1024 }));
}

function ours(name: Name, parallel: 'auto' | 1): { loaded: number; peak: number } {
  const out = execFileSync(process.execPath, [...process.execArgv, import.meta.filename, '--child', name, '--batch', String(batch),
    '--steps', String(steps), '--parallel', String(parallel)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as { loaded: number; peak: number };
}

function theirs(name: Name, sigmas: number[]): number {
  const args = [join(root, 'benchmarks', 'python', 'sample_loop.py'), '--model', modelPath, '--guide', guidePath, '--strategy', name,
    '--batch', String(batch), '--sigmas', JSON.stringify(sigmas), '--runs', '1', '--threads', String(runtimeInfo().intraOpThreads),
    '--device', 'cpu'];
  return (JSON.parse(execFileSync(python, args, { encoding: 'utf8' })) as { peak_rss_bytes: number }).peak_rss_bytes;
}

const childIndex = argv.indexOf('--child');
if (childIndex >= 0) {
  await child(argv[childIndex + 1] as Name, flag('parallel', 'auto') === 'auto' ? 'auto' : 1);
} else {
  const card = (await loadModel(modelPath, { device: 'cpu' })).card as DenoiserCard;
  const sigmas = sigmasFor({ kind: 'karras', rho: 7 }, steps, noiseScheduleFromCard(card));
  const rows: string[] = [];
  for (const name of names) {
    const mine = ours(name, 'auto');
    const whole = ours(name, 1);
    const py = theirs(name, sigmas);
    const row = `| ${name} | ${mib(mine.peak)} | ${mib(mine.peak - mine.loaded)} | ${mib(whole.peak)} | ${mib(py)} |`;
    rows.push(row);
    console.log(row);
  }
  const info = runtimeInfo();
  const report = `# Peak memory per strategy (CPU)

Command: \`npx tsx benchmarks/memory.ts --batch ${batch} --steps ${steps}\`
Date: ${new Date().toISOString()}
Machine: ${machineFor('cpu')}; libtorch ${info.torchVersion}  
${blasFor({ python: true })}
Model: models/fashion-unet.pt (guide: fashion-unet-weak.pt), Euler, ${steps} Karras steps, batch ${batch}.
Each strategy runs in a fresh process (ours: Node + this package; Python: benchmarks/python/sample_loop.py),
and the process's peak resident memory (getrusage maxrss) is reported. "Above loaded": our peak minus the
resident memory once the models were loaded, i.e. what the sampling run itself added. "Ours": sample()'s
default, each forward split across the torch threads (\`parallel: 'auto'\`); "parallel 1": one forward per batch.
Python's SAG: sample_loop.py --strategy sag (diffusers' sag_masking on the eager module).

| strategy | ours peak RSS (MiB) | ours, above loaded (MiB) | ours, parallel 1 (MiB) | Python peak RSS (MiB) |
|---|---:|---:|---:|---:|
${rows.join('\n')}
`;
  writeFileSync(join(root, 'benchmarks', 'results', 'memory-cpu.md'), report);
  console.log(report);
}
