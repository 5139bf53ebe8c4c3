/**
 * Loading a model: this package's loadModel (the archive checks, the graph
 * scan, the attention pass, freezing, the probe) against Python's
 * torch.jit.load + torch.jit.freeze of the same file, alternating run by run.
 *
 *   npx tsx benchmarks/load-time.ts [--model out/real-size/sd15.pt] [--reps 3]
 *
 * Writes benchmarks/results/load-time-cpu.md. Python runs in a fresh process
 * per rep (its interpreter start is not counted: the script times inside);
 * ours runs in this process, disposing each model before the next load. Both
 * read the file from the page cache after the first rep.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { loadModel, runtimeInfo } from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor } from './cli.js';

const root = join(import.meta.dirname, '..');
const model = join(root, flag('model', join('out', 'real-size', 'sd15.pt')));
const reps = Number(flag('reps', '3'));
const python = pythonFor('cpu');
const threads = runtimeInfo().intraOpThreads;

const timeLoad = async (options: Parameters<typeof loadModel>[1]) => {
  const start = performance.now();
  const loaded = await loadModel(model, options);
  const ms = performance.now() - start;
  loaded.dispose();
  return ms;
};
const pythonLoad = () =>
  (JSON.parse(execFileSync(python, [join(root, 'benchmarks', 'python', 'load_time.py'), model, String(threads)], { encoding: 'utf8' })) as { load_ms: number })
    .load_ms;

const rows: Record<string, number[]> = { python: [], ours: [], unhooked: [], trusted: [] };
for (let i = 0; i < reps; i++) {
  rows.python!.push(pythonLoad());
  rows.ours!.push(await timeLoad({ device: 'cpu' }));
  rows.unhooked!.push(await timeLoad({ device: 'cpu', attentionHooks: false }));
  rows.trusted!.push(await timeLoad({ device: 'cpu', attentionHooks: false, trust: 'full' }));
  console.log(`rep ${i + 1}: ${Object.entries(rows).map(([k, v]) => `${k} ${(v.at(-1)! / 1000).toFixed(2)} s`).join(', ')}`);
}
const s = (name: string) => (median(rows[name]!) / 1000).toFixed(2);
const ratio = (name: string) => (median(rows[name]!) / median(rows.python!)).toFixed(2);
const report = `# Loading a model: torch-guidance vs torch.jit.load + freeze (cpu)

Command: \`npx tsx benchmarks/load-time.ts ${argv.join(' ')}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor('cpu')}; libtorch ${runtimeInfo().torchVersion}; ${threads} intra-op threads on both sides  
${blasFor({ python: true })}  
Model: ${relative(root, model)}. Medians of ${reps} loads per row, the rows alternating load by load.

| | seconds | / Python |
|---|---:|---:|
| Python: \`torch.jit.load\` + \`torch.jit.freeze\` | ${s('python')} | 1.00 |
| ours: \`loadModel\` (archive checks, graph scan, attention pass, freeze, probe) | ${s('ours')} | ${ratio('ours')} |
| ours, \`attentionHooks: false\` | ${s('unhooked')} | ${ratio('unhooked')} |
| ours, \`attentionHooks: false, trust: 'full'\` (no graph scan) | ${s('trusted')} | ${ratio('trusted')} |
`;
writeFileSync(join(root, 'benchmarks', 'results', 'load-time-cpu.md'), report);
console.log(report);
