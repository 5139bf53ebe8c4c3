/**
 * `torch-guidance attention`: where the model's self-attention looks, over
 * its own samples. Samples are drawn, re-noised to one noise level, and run
 * once with every chosen site captured; each site's head-averaged map is
 * summed over queries (the attention each position receives, what SAG
 * thresholds) and drawn as a heat map over the sample, beside SAG's mask.
 */
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { Denoiser } from '../guidance/denoiser.js';
import { heatmap, labelledRows, overlay, toImages, writePng, type LabelledRow, type RasterImage } from '../image/index.js';
import { loadModel } from '../model.js';
import { sample } from '../sample.js';
import { randn, tensor, type DeviceName, type Tensor } from '../tensor.js';
import { trustFlag, trustHelp, trustLevel } from './trust-flag.js';
import { UsageError } from './usage-error.js';
import { shippedModel } from './package-paths.js';

export const attentionHelp = `Usage: torch-guidance attention [options]

Draws samples, re-noises them to --sigma, runs the model once with every chosen
self-attention site captured, and writes <out>/attention.png: the samples, then
one row per site with the attention each position receives (the head-averaged
map summed over queries) as a heat map over the sample, then SAG's mask (where
that sum exceeds 1, i.e. above average) for the SAG site.

Options:
  --model PATH     default the package's models/fashion-unet.pt
  --labels LIST    class per sample, comma-separated (default 0,1,...,9; 'null' for unconditional)
  --seed N         seed of sample 0 (default 0)
  --steps N        Euler steps for the samples (default 20)
  --sigma X        noise level of the captured forward (default 1)
  --sites LIST     site paths, comma-separated (default every self-attention site)
  --sag-site PATH  the site SAG's mask is drawn for (default mid.attn, else the first)
  --device NAME    auto (default), cpu, cuda, cuda:N
  --out DIR        output folder (default out)
${trustHelp(19)}

Example:
  torch-guidance attention --labels 0,3,7,9 --sigma 2 --sites mid.attn,up.6`;

/** Nearest-neighbour upscale of a grid of values to width x height. */
function upscale(values: Float32Array, gridH: number, gridW: number, height: number, width: number): Float32Array {
  const out = new Float32Array(height * width);
  for (let y = 0; y < height; y++) {
    const gy = Math.min(gridH - 1, Math.floor((y * gridH) / height));
    for (let x = 0; x < width; x++) out[y * width + x] = values[gy * gridW + Math.min(gridW - 1, Math.floor((x * gridW) / width))]!;
  }
  return out;
}

function parseLabels(text: string): (number | null)[] {
  return text.split(',').map((part) => {
    const t = part.trim();
    if (t === 'null') return null;
    const n = Number(t);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--labels: '${t}' is not a class index or 'null'.`);
    return n;
  });
}

export async function attentionCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string', default: shippedModel('fashion-unet.pt') },
      labels: { type: 'string', default: '0,1,2,3,4,5,6,7,8,9' },
      seed: { type: 'string', default: '0' },
      steps: { type: 'string', default: '20' },
      sigma: { type: 'string', default: '1' },
      sites: { type: 'string' },
      'sag-site': { type: 'string' },
      device: { type: 'string', default: 'auto' },
      out: { type: 'string', default: 'out' },
      ...trustFlag,
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${String(positionals.at(0))}'.`);
  const labels = parseLabels(values.labels);
  const seed = Number(values.seed);
  const steps = Number(values.steps);
  const sigma = Number(values.sigma);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer, got '${values.seed}'.`);
  if (!Number.isInteger(steps) || steps < 1) throw new UsageError(`--steps must be a positive integer, got '${values.steps}'.`);
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new UsageError(`--sigma must be a positive number, got '${values.sigma}'.`);

  using model = await loadModel(values.model, { device: values.device as DeviceName, trust: trustLevel(values.trust) });
  const selfSites = model.attentionSites.filter((s) => s.selfAttention && s.grid);
  const wanted = values.sites?.split(',').map((s) => s.trim());
  const unknown = wanted?.filter((w) => !selfSites.some((s) => s.path === w));
  if (unknown?.length) {
    throw new UsageError(`--sites: no self-attention site ${unknown.map((u) => `'${u}'`).join(', ')}; sites: ${selfSites.map((s) => s.path).join(', ') || 'none'}.`);
  }
  const sites = wanted ? selfSites.filter((s) => wanted.includes(s.path)) : selfSites;
  if (sites.length === 0) throw new UsageError(`${values.model} has no self-attention site with a known grid.`);
  const sagSite = values['sag-site'] ?? (sites.some((s) => s.path === 'mid.attn') ? 'mid.attn' : sites[0]!.path);
  if (!sites.some((s) => s.path === sagSite)) throw new UsageError(`--sag-site '${sagSite}' is not among the drawn sites.`);

  const denoiser = Denoiser.of(model);
  const nullLabel = model.card && 'conditioning' in model.card && model.card.conditioning.kind === 'class' ? model.card.conditioning.nullLabel : undefined;
  const result = await sample({ model, labels, seed, sampler: { name: 'euler', steps }, batchSize: labels.length, clipDenoised: [-1, 1] });
  const owned: Tensor[] = [result.images];
  try {
    const n = labels.length;
    const [, height, width] = [result.images.shape[1]!, result.images.shape[2]!, result.images.shape[3]!];
    // x = sample + sigma * noise, as the sampler would see it at that level.
    const noise = randn(result.images.shape, { seed: seed + 1_000_003, device: model.device });
    const scaledNoise = noise.mul(sigma);
    const x = result.images.add(scaledNoise);
    owned.push(noise, scaledNoise, x);
    const conditions =
      nullLabel === undefined ? undefined : tensor(BigInt64Array.from(labels.map((l) => BigInt(l ?? nullLabel))), [n], { device: model.device });
    if (conditions) owned.push(conditions);
    const { inputs, owned: inputTensors } = denoiser.inputs(x, sigma, conditions && [conditions]);
    owned.push(...inputTensors);
    const run = await model.run<Tensor>({ inputs, hooks: [{ sites: sites.map((s) => s.path), action: 'capture', start: 0, length: n }] });
    owned.push(run.output, ...run.captures.values());

    const samples = await toImages(result.images);
    const rows: LabelledRow[] = [{ label: 'samples', sublabel: `${n} at seeds ${seed}+`, images: samples }];
    let sagMask: RasterImage[] | undefined;
    for (const site of sites) {
      const map = run.captures.get(site.path)!; // [n, queries, keys], head-averaged
      using received = map.sumAxis(1); // [n, keys]: attention each position receives
      const values = (await received.toArray()) as Float32Array;
      const [gridH, gridW] = site.grid!;
      const keys = gridH * gridW;
      const heat: RasterImage[] = [];
      const masks: RasterImage[] = [];
      for (let i = 0; i < n; i++) {
        const cell = values.subarray(i * keys, (i + 1) * keys);
        const big = upscale(cell, gridH, gridW, height!, width!);
        heat.push(overlay(samples[i]!, heatmap(big, width!, height!, { colormap: 'magma' }), 0.65));
        if (site.path === sagSite) masks.push(overlay(samples[i]!, heatmap(big.map((v) => (v > 1 ? 1 : 0)), width!, height!, { min: 0, max: 1 }), 0.5));
      }
      rows.push({ label: site.path, sublabel: `${gridH}x${gridW}, received`, images: heat });
      if (site.path === sagSite) sagMask = masks;
    }
    if (sagMask) rows.push({ label: 'SAG mask', sublabel: `${sagSite} sum > 1`, images: sagMask });
    const outDir = resolve(values.out);
    await mkdir(outDir, { recursive: true });
    const file = join(outDir, 'attention.png');
    await writePng(file, labelledRows(rows, { scale: 3, title: `${model.card?.name ?? 'model'}: attention at sigma ${sigma} over its own samples` }));
    console.log(`wrote ${relative(process.cwd(), file)}: ${sites.length} site(s), ${n} sample(s)`);
  } finally {
    for (const t of owned) t.dispose();
  }
}
