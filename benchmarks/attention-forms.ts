/**
 * The hook-free path on every attention form: a forward with no plan on a
 * model loaded with the attention pass (hook ops inserted, then taken out of
 * the graph forwards without a plan run) next to the same file loaded
 * untouched (`attentionHooks: false`), in one run, alternating.
 *
 *   npx tsx benchmarks/attention-forms.ts [--batch 16] [--rounds 10] [--forms timm,diffusers]
 *
 * The forms are models/fixtures/attention_forms.py's, built into a temporary
 * folder by the test machine's Python torch, each scripted and traced.
 * Writes benchmarks/results/attention-forms-cpu.md.
 *
 * Method: per round, a block of forwards on each side in alternating order;
 * the ratio hooked / untouched is taken within each round (block medians),
 * the table gives its median over rounds with quartiles. Target: ≤ 1.03.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Model, type Tensor } from '../src/index.js';
import { argv, blasFor, flag, machineFor, median, pythonFor, quantile } from './cli.js';

const root = join(import.meta.dirname, '..');
const batch = Number(flag('batch', '16'));
const rounds = Number(flag('rounds', '10'));
const iterations = 6;
const only = flag('forms', '');
const info = runtimeInfo();

const dir = mkdtempSync(join(tmpdir(), 'tg-forms-bench-'));
const script = join(root, 'models', 'fixtures', 'attention_forms.py');
const built = execFileSync(pythonFor('cpu'), [script, dir, ...(only ? only.split(',') : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as { form: string; export: string; path: string })
  .filter((entry) => entry.form !== 'partial');

function side(model: Model) {
  const x = randn([batch, 4, 6, 8], { seed: 0 });
  const t = tensor(new Float32Array(batch).fill(500), [batch]);
  const label = tensor(new BigInt64Array(batch).fill(3n), [batch]);
  const once = async () => {
    const start = performance.now();
    const out = await model.forward<Tensor>(x, t, label);
    const elapsed = performance.now() - start;
    out.dispose();
    return elapsed;
  };
  return {
    block: async () => {
      const times: number[] = [];
      for (let i = 0; i < iterations; i++) times.push(await once());
      return median(times);
    },
    warm: async () => {
      for (let i = 0; i < 5; i++) await once();
    },
    close: () => [x, t, label].forEach((h) => h.dispose()),
  };
}

const span = (values: number[]) => `${median(values).toFixed(3)} (${quantile(values, 0.25).toFixed(3)}-${quantile(values, 0.75).toFixed(3)})`;
const rows: string[] = [];
try {
  for (const entry of built) {
    const hooked = await loadModel(entry.path, { device: 'cpu' });
    const untouched = await loadModel(entry.path, { device: 'cpu', attentionHooks: false });
    const sides = [side(hooked), side(untouched)];
    const blocks: number[][] = [[], []];
    const plainBefore = hooked.plainForwardCount;
    for (const s of sides) await s.warm();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < 2; k++) {
        const which = (k + round) % 2;
        blocks[which]!.push(await sides[which]!.block());
      }
    }
    const plainRan = hooked.plainForwardCount - plainBefore === (5 + rounds * iterations);
    const ratio = blocks[0]!.map((h, r) => h / blocks[1]![r]!);
    rows.push(
      `| ${entry.form} | ${entry.export} | ${hooked.attentionSites.length} | ${median(blocks[0]!).toFixed(2)} | ` +
        `${median(blocks[1]!).toFixed(2)} | ${span(ratio)} | ${plainRan ? 'yes' : 'no'} |`,
    );
    console.log(rows.at(-1));
    for (const s of sides) s.close();
    hooked.dispose();
    untouched.dispose();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const report = `# The hook-free path on every attention form (cpu)

Command: \`npx tsx benchmarks/attention-forms.ts${argv.length ? ' ' + argv.join(' ') : ''}\`  
Date: ${new Date().toISOString()}  
Machine: ${machineFor('cpu')}; libtorch ${info.torchVersion} (${info.torchSource}); ${info.intraOpThreads} intra-op threads  
${blasFor()}  
Models: models/fixtures/attention_forms.py, each form scripted and traced (random weights, [${batch}, 4, 6, 8] inputs)

Method: ${rounds} rounds; in each, a block of ${iterations} forwards with no plan on the model loaded with the
attention pass and on the same file loaded with \`attentionHooks: false\`, in alternating order (after 5
warm-up forwards each). Hooked / untouched is taken within each round (block medians); median over rounds
with quartiles. "Hook-free" says whether every forward of the hooked model ran the graph with the hook ops
taken out (\`plainForwardCount\`). Target: ≤ 1.03.

| form | export | sites | hooked (ms) | untouched (ms) | hooked / untouched | hook-free |
|---|---|---:|---:|---:|---|---|
${rows.join('\n')}
`;
writeFileSync(join(root, 'benchmarks', 'results', 'attention-forms-cpu.md'), report);
console.log(report);
