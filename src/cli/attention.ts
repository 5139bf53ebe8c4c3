/**
 * `torch-guidance attention`: where the model's self-attention looks, over
 * its own samples. Samples are drawn, re-noised to one noise level, and run
 * once with every chosen site captured; each site's head-averaged map is
 * summed over queries (the attention each position receives, what SAG
 * thresholds) and drawn as a heat map over the sample, beside SAG's mask.
 */
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';

import { randn, tensor, type DeviceName, type Tensor } from '../core/tensor.js';
import { UsageError } from '../core/usage-error.js';
import { Denoiser } from '../guidance/denoiser.js';
import type { AttentionSite } from '../hooks/attention.js';
import { heatmap, labelledRows, overlay, toImages, writePng, type LabelledRow, type RasterImage } from '../image/index.js';
import { loadModel, type Model } from '../model/model.js';
import { deviceFlag, modelFlags, outFlag, parseFlags, seedFlag, stepsFlag, trustFlag } from '../runs/flags.js';
import { sample } from '../sampling/sample.js';

/** The column where the help's option texts start. */
const COLUMN = 19;
/** Euler steps of the samples when --steps is not given. */
const DEFAULT_STEPS = 20;

/** The command's --help text. */
export const attentionHelp = `Usage: torch-guidance attention [options]

Draws samples, re-noises them to --sigma, runs the model once with every chosen
self-attention site captured, and writes <out>/attention.png: the samples, then
one row per site with the attention each position receives (the head-averaged
map summed over queries) as a heat map over the sample, then SAG's mask (where
that sum exceeds 1, i.e. above average) for the SAG site.

Options:
${modelFlags.help('model', COLUMN, "default the package's models/fashion-unet.pt")}
  --labels LIST    class per sample, comma-separated (default 0,1,...,9; 'null' for unconditional)
${seedFlag.help(COLUMN)}
${stepsFlag.help(COLUMN, DEFAULT_STEPS)}
  --sigma X        noise level of the captured forward (default 1)
  --sites LIST     site paths, comma-separated (default every self-attention site)
  --sag-site PATH  the site SAG's mask is drawn for (default mid.attn, else the first)
${deviceFlag.help(COLUMN)}
${outFlag.help(COLUMN, 'output folder (default out)')}
${trustFlag.help(COLUMN)}

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

/** The command line of `attention`, checked (the sites are checked against the model once it is loaded). */
interface AttentionFlags {
  modelPath: string;
  labels: (number | null)[];
  seed: number;
  steps: number;
  sigma: number;
  sites: string[] | undefined;
  sagSite: string | undefined;
  device: DeviceName;
  out: string;
  trust: 'full' | 'scan';
}

function readAttentionFlags(argv: string[]): AttentionFlags {
  const { values } = parseFlags(argv, {
    model: modelFlags.option.model,
    labels: { type: 'string', default: '0,1,2,3,4,5,6,7,8,9' },
    ...seedFlag.option,
    ...stepsFlag.option(DEFAULT_STEPS),
    sigma: { type: 'string', default: '1' },
    sites: { type: 'string' },
    'sag-site': { type: 'string' },
    ...deviceFlag.option,
    ...outFlag.option('out'),
    ...trustFlag.option,
  } as const);
  const sigma = Number(values.sigma);
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new UsageError(`--sigma must be a positive number, got '${values.sigma}'.`);
  return {
    modelPath: modelFlags.path('model', values.model),
    labels: parseLabels(values.labels),
    seed: Number(seedFlag.read(values.seed, BigInt(Number.MAX_SAFE_INTEGER))),
    steps: stepsFlag.read(values.steps),
    sigma,
    sites: values.sites?.split(',').map((s) => s.trim()),
    sagSite: values['sag-site'],
    device: deviceFlag.read(values.device),
    out: outFlag.read(values.out),
    trust: trustFlag.read(values.trust),
  };
}

/** The self-attention sites to draw (--sites, default all with a grid) and the one SAG's mask is drawn for. */
function chooseSites(model: Model, flags: AttentionFlags): { sites: AttentionSite[]; sagSite: string } {
  const selfSites = model.attentionSites.filter((s) => s.selfAttention && s.grid);
  const unknown = flags.sites?.filter((w) => !selfSites.some((s) => s.path === w));
  if (unknown?.length) {
    throw new UsageError(`--sites: no self-attention site ${unknown.map((u) => `'${u}'`).join(', ')}; sites: ${selfSites.map((s) => s.path).join(', ') || 'none'}.`);
  }
  const sites = flags.sites ? selfSites.filter((s) => flags.sites!.includes(s.path)) : selfSites;
  if (sites.length === 0) throw new UsageError(`${flags.modelPath} has no self-attention site with a known grid.`);
  const sagSite = flags.sagSite ?? (sites.some((s) => s.path === 'mid.attn') ? 'mid.attn' : sites[0]!.path);
  if (!sites.some((s) => s.path === sagSite)) throw new UsageError(`--sag-site '${sagSite}' is not among the drawn sites.`);
  return { sites, sagSite };
}

/**
 * Re-noises the samples to --sigma (x = sample + sigma * noise, as the
 * sampler would see it at that level) and runs the model once with every
 * site captured; the captures are pushed on `owned` for the caller to dispose.
 */
async function captureAt(model: Model, images: Tensor, flags: AttentionFlags, sites: AttentionSite[], owned: Tensor[]): Promise<Map<string, Tensor>> {
  const n = flags.labels.length;
  const nullLabel = model.card && 'conditioning' in model.card && model.card.conditioning.kind === 'class' ? model.card.conditioning.nullLabel : undefined;
  const noise = randn(images.shape, { seed: flags.seed + 1_000_003, device: model.device });
  const scaledNoise = noise.mul(flags.sigma);
  const x = images.add(scaledNoise);
  owned.push(noise, scaledNoise, x);
  const conditions =
    nullLabel === undefined ? undefined : tensor(BigInt64Array.from(flags.labels.map((l) => BigInt(l ?? nullLabel))), [n], { device: model.device });
  if (conditions) owned.push(conditions);
  const { inputs, owned: inputTensors } = Denoiser.of(model).inputs(x, flags.sigma, conditions && [conditions]);
  owned.push(...inputTensors);
  const run = await model.run<Tensor>({ inputs, hooks: [{ sites: sites.map((s) => s.path), action: 'capture', start: 0, length: n }] });
  owned.push(run.output, ...run.captures.values());
  return run.captures;
}

/** One site's heat maps over the samples (the attention each position receives) and, for SAG's site, its mask. */
async function siteMaps(map: Tensor, site: AttentionSite, samples: RasterImage[], withMask: boolean): Promise<{ heat: RasterImage[]; masks: RasterImage[] }> {
  using received = map.sumAxis(1); // [n, keys]: attention each position receives
  const values = (await received.toArray()) as Float32Array;
  const [gridH, gridW] = site.grid!;
  const keys = gridH * gridW;
  const heat: RasterImage[] = [];
  const masks: RasterImage[] = [];
  samples.forEach((image, i) => {
    const big = upscale(values.subarray(i * keys, (i + 1) * keys), gridH, gridW, image.height, image.width);
    heat.push(overlay(image, heatmap(big, image.width, image.height, { colormap: 'magma' }), 0.65));
    if (withMask) masks.push(overlay(image, heatmap(big.map((v) => (v > 1 ? 1 : 0)), image.width, image.height, { min: 0, max: 1 }), 0.5));
  });
  return { heat, masks };
}

/** Runs `torch-guidance attention` with `argv`. */
export async function attentionCommand(argv: string[]): Promise<void> {
  const flags = readAttentionFlags(argv);
  using model = await loadModel(flags.modelPath, { device: flags.device, trust: flags.trust });
  const { sites, sagSite } = chooseSites(model, flags);
  const { labels, seed } = flags;
  const result = await sample({ model, labels, seed, sampler: { name: 'euler', steps: flags.steps }, batchSize: labels.length, clipDenoised: [-1, 1] });
  const owned: Tensor[] = [result.images];
  try {
    const captures = await captureAt(model, result.images, flags, sites, owned);
    const samples = await toImages(result.images);
    const rows: LabelledRow[] = [{ label: 'samples', sublabel: `${labels.length} at seeds ${seed}+`, images: samples }];
    let sagMask: RasterImage[] | undefined;
    for (const site of sites) {
      // Each capture is [n, queries, keys], head-averaged.
      const { heat, masks } = await siteMaps(captures.get(site.path)!, site, samples, site.path === sagSite);
      rows.push({ label: site.path, sublabel: `${site.grid![0]}x${site.grid![1]}, received`, images: heat });
      if (site.path === sagSite) sagMask = masks;
    }
    if (sagMask) rows.push({ label: 'SAG mask', sublabel: `${sagSite} sum > 1`, images: sagMask });
    const outDir = resolve(flags.out);
    await mkdir(outDir, { recursive: true });
    const file = join(outDir, 'attention.png');
    await writePng(file, labelledRows(rows, { scale: 3, title: `${model.card?.name ?? 'model'}: attention at sigma ${flags.sigma} over its own samples` }));
    console.log(`wrote ${relative(process.cwd(), file)}: ${sites.length} site(s), ${labels.length} sample(s)`);
  } finally {
    for (const t of owned) t.dispose();
  }
}
