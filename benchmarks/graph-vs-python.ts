/**
 * Does this package run the same optimised graph as Python torch? Loads one
 * TorchScript file both ways (ours: loadModel, with its hook-free forward;
 * Python: torch.jit.load + freeze), runs a few forwards so the profiling
 * executor specialises and fuses, and compares the graphs each side last
 * executed: node kinds counted, the kinds whose counts differ listed. A
 * difference here (a fusion group one side forms and the other does not, an
 * op one side keeps) explains a per-forward time gap that the call path
 * (call-overhead.ts) does not.
 *
 *   npx tsx benchmarks/graph-vs-python.ts [--device cpu|cuda] [--model models/fashion-unet.pt] [--batch 16]
 *
 * Writes benchmarks/results/graph-vs-python[-cuda].md, and both graphs in
 * full to out/graphs/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type DeviceName, type Tensor } from '../src/index.js';
import { blasFor, flag, pythonFor } from './cli.js';

const root = join(import.meta.dirname, '..');
const device = flag('device', 'cpu') as DeviceName;
const modelArg = flag('model', 'models/fashion-unet.pt');
const batch = Number(flag('batch', '16'));
const python = pythonFor(device);
const info = runtimeInfo();

async function oursGraph(): Promise<string> {
  const model = await loadModel(join(root, modelArg), { device });
  const x = randn([batch, 1, 28, 28], { seed: 0, device });
  const t = tensor(new Float32Array(batch).fill(500), [batch], { device });
  const label = tensor(new BigInt64Array(batch).fill(3n), [batch], { device });
  try {
    for (let i = 0; i < 6; i++) ((await model.forward(x, t, label)) as Tensor).dispose();
    return model.lastOptimizedGraph()!;
  } finally {
    for (const h of [x, t, label]) h.dispose();
    model.dispose();
  }
}

/** Node kinds (aten::conv2d, prim::TensorExprGroup, ...) and how often each occurs, subgraphs included. */
function kinds(graph: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const match of graph.matchAll(/=\s+([A-Za-z_]+::[A-Za-z_0-9]+)/g)) counts.set(match[1]!, (counts.get(match[1]!) ?? 0) + 1);
  return counts;
}

const ours = await oursGraph();
const theirs = execFileSync(python, [join(root, 'benchmarks', 'python', 'graph_dump.py'), join(root, modelArg), String(batch), '--device', device], {
  encoding: 'utf8',
  maxBuffer: 64 << 20,
});
const outDir = join(root, 'out', 'graphs');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `ours-${device}.txt`), ours);
writeFileSync(join(outDir, `python-${device}.txt`), theirs);

const a = kinds(ours);
const b = kinds(theirs);
const all = [...new Set([...a.keys(), ...b.keys()])].sort();
const differing = all.filter((k) => (a.get(k) ?? 0) !== (b.get(k) ?? 0));
const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);
const fusion = (m: Map<string, number>) =>
  [...m.entries()].filter(([k]) => /Fusion|TensorExpr|Group/.test(k)).map(([k, v]) => `${k} ×${v}`).join(', ') || 'none';

const report = `# The optimised graph: this package vs Python torch

Command: \`npx tsx benchmarks/graph-vs-python.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Device: ${device === 'cpu' ? 'cpu' : (info.cudaDevices[0]?.model ?? device)}; libtorch ${info.torchVersion}; model \`${modelArg}\`, batch ${batch}  
${blasFor({ python: true })}  
Method: 6 forwards each side (ours: \`model.forward\`, the hook-free graph; Python: \`torch.jit.freeze(torch.jit.load(...))\` under
\`torch.inference_mode()\`), then the graph each side last executed (\`model.lastOptimizedGraph()\` /
\`torch.jit.last_executed_optimized_graph()\`); full text in \`out/graphs/\`.

| | ours | Python |
|---|---:|---:|
| nodes (all kinds, subgraphs included) | ${total(a)} | ${total(b)} |
| graph text lines | ${ours.split('\n').length} | ${theirs.split('\n').length} |
| fusion groups | ${fusion(a)} | ${fusion(b)} |

${differing.length === 0 ? 'Every node kind occurs equally often on both sides: the same graph runs.' : `Node kinds whose counts differ:

| kind | ours | Python |
|---|---:|---:|
${differing.map((k) => `| \`${k}\` | ${a.get(k) ?? 0} | ${b.get(k) ?? 0} |`).join('\n')}`}
`;
writeFileSync(join(root, 'benchmarks', 'results', device === 'cpu' ? 'graph-vs-python.md' : 'graph-vs-python-cuda.md'), report);
console.log(report);
