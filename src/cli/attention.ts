/**
 * `torch-guidance attention`: where the model's self-attention looks, over
 * its own samples. Samples are drawn, re-noised to one noise level, and run
 * once with every chosen site captured; each site's head-averaged map is
 * summed over queries (the attention each position receives, what SAG
 * thresholds) and drawn as a heat map over the sample, beside SAG's mask.
 * Latent models are re-noised and captured in latent space and drawn over
 * their decoded images; models with named conditions (text embeddings and
 * the like) are sampled at their null conditions, since the command has no
 * prompt encoder.
 */
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';

import { full, randn, tensor, type DeviceName, type Tensor } from '../core/tensor.js';
import { UsageError } from '../core/usage-error.js';
import { Denoiser } from '../guidance/denoiser.js';
import { globToRegExp, type AttentionSite } from '../hooks/attention.js';
import { heatmap, labelledRows, overlay, toImages, writePng, type LabelledRow, type RasterImage } from '../image/index.js';
import { loadModel, type Model } from '../model/model.js';
import { deviceFlag, modelFlags, outFlag, parseFlags, seedFlag, stepsFlag, trustFlag } from '../runs/flags.js';
import type { NamedConditions } from '../sampling/named-conditions.js';
import { sample, type SampleOptions } from '../sampling/sample.js';

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

Class models draw one sample per --labels entry. Models with named conditions
(a version 2 card: text context, pooled embedding, ...) draw --count samples at
their null conditions (the card's stored null, else zeros). Latent models with
a decoder are captured on the latents and drawn over the decoded images.

Options:
${modelFlags.help('model', COLUMN, "default the package's models/fashion-unet.pt")}
  --labels LIST    class per sample, comma-separated (default 0,1,...,9; 'null' for unconditional)
  --count N        samples, for models without class labels (default 4)
  --tile PX        draw each sample PX pixels wide, box-filtered down from its own
                   size, which must be a multiple of PX (default its own size)
${seedFlag.help(COLUMN)}
${stepsFlag.help(COLUMN, DEFAULT_STEPS)}
  --sigma X        noise level of the captured forward (default 1)
  --sites LIST     site paths, comma-separated (default every self-attention site)
  --sag-site PATH  the site SAG's mask is drawn for (default the card's SAG site, else
                   mid.attn, else the first in a middle block, else the first)
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
  /** Samples of a model without class labels. */
  count: number;
  /** Width in pixels each sample is drawn at (a divisor of its size), or undefined for its own size. */
  tile: number | undefined;
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
    count: { type: 'string', default: '4' },
    tile: { type: 'string' },
    ...seedFlag.option,
    ...stepsFlag.option(DEFAULT_STEPS),
    sigma: { type: 'string', default: '1' },
    sites: { type: 'string' },
    'sag-site': { type: 'string' },
    ...deviceFlag.option,
    ...outFlag.option('out'),
    ...trustFlag.option,
  } as const);
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new UsageError(`--count must be an integer from 1 to 64, got '${values.count}'.`);
  const tile = values.tile === undefined ? undefined : Number(values.tile);
  if (tile !== undefined && (!Number.isInteger(tile) || tile < 1)) throw new UsageError(`--tile must be a positive integer, got '${values.tile}'.`);
  const sigma = Number(values.sigma);
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new UsageError(`--sigma must be a positive number, got '${values.sigma}'.`);
  return {
    modelPath: modelFlags.path('model', values.model),
    labels: parseLabels(values.labels),
    count,
    tile,
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

/** The card's SAG site where it names one, else mid.attn, else the first site in a middle block, else the first. */
function defaultSagSite(model: Model, sites: AttentionSite[]): string {
  const declared = model.card && 'guidanceSites' in model.card ? model.card.guidanceSites?.sag : undefined;
  const patterns = (declared === undefined ? [] : [declared].flat()).map((selector) => globToRegExp(selector));
  const pick =
    sites.find((s) => patterns.some((p) => p.test(s.path))) ?? sites.find((s) => s.path === 'mid.attn') ?? sites.find((s) => /(^|\.)mid/.test(s.path)) ?? sites[0]!;
  return pick.path;
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
  const sagSite = flags.sagSite ?? defaultSagSite(model, sites);
  if (!sites.some((s) => s.path === sagSite)) throw new UsageError(`--sag-site '${sagSite}' is not among the drawn sites.`);
  return { sites, sagSite };
}

/**
 * What the samples are drawn with: class labels, named conditions at their
 * nulls, or nothing; and the same as the forward's condition list. Tensors
 * are pushed on `owned`.
 */
function conditionsFor(model: Model, flags: AttentionFlags, owned: Tensor[]): { options: Partial<SampleOptions>; n: number; list: Tensor[] | undefined } {
  const conditioning = model.card && 'conditioning' in model.card ? model.card.conditioning : undefined;
  if (conditioning?.kind === 'class') {
    const n = flags.labels.length;
    const labels = tensor(BigInt64Array.from(flags.labels.map((l) => BigInt(l ?? conditioning.nullLabel))), [n], { device: model.device });
    owned.push(labels);
    return { options: { labels: flags.labels }, n, list: [labels] };
  }
  if (conditioning?.kind === 'named') {
    const n = flags.count;
    const named: Record<string, Tensor> = {};
    for (const [name, input] of Object.entries(conditioning.inputs)) {
      const stored = model.nullConditions.get(name);
      const value = stored ? stored.repeat(n) : full([n, ...input.shape], 0, { device: model.device });
      owned.push(value);
      named[name] = value;
    }
    return { options: { conditions: named as NamedConditions, count: n }, n, list: Object.values(named) };
  }
  if (conditioning === undefined || conditioning.kind === 'none') return { options: { count: flags.count }, n: flags.count, list: undefined };
  throw new UsageError(`${flags.modelPath}: attention draws class, named-condition or unconditional models; this card's conditioning is '${conditioning.kind}'.`);
}

/**
 * Re-noises the samples (latents for a latent model) to --sigma (x = sample +
 * sigma * noise, as the sampler would see it at that level) and runs the
 * model once with every site captured; the captures are pushed on `owned`
 * for the caller to dispose.
 */
async function captureAt(model: Model, samples: Tensor, conditions: Tensor[] | undefined, flags: AttentionFlags, sites: AttentionSite[], owned: Tensor[]): Promise<Map<string, Tensor>> {
  const n = samples.shape[0]!;
  const noise = randn(samples.shape, { seed: flags.seed + 1_000_003, device: model.device });
  const scaledNoise = noise.mul(flags.sigma);
  const x = samples.add(scaledNoise);
  owned.push(noise, scaledNoise, x);
  const { inputs, owned: inputTensors } = Denoiser.of(model).inputs(x, flags.sigma, conditions);
  owned.push(...inputTensors);
  const run = await model.run<Tensor>({ inputs, hooks: [{ sites: sites.map((s) => s.path), action: 'capture', start: 0, length: n }] });
  owned.push(run.output, ...run.captures.values());
  return run.captures;
}

/** The samples box-filtered down to `tile` pixels wide (an integer factor of their size); a new tensor. */
function downscale(images: Tensor, tile: number | undefined): Tensor {
  const [n, c, h, w] = images.shape as [number, number, number, number];
  if (tile === undefined || tile >= w) return images.clone();
  const factor = w / tile;
  if (!Number.isInteger(factor) || h % factor !== 0) throw new UsageError(`--tile ${tile} does not divide the samples' ${h}x${w} pixels.`);
  using blocks = images.reshape([n, c, h / factor, factor, w / factor, factor]);
  using rows = blocks.meanAxis(5);
  return rows.meanAxis(3);
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
  const owned: Tensor[] = [];
  try {
    const { options, n, list } = conditionsFor(model, flags, owned);
    const latent = model.card !== null && 'decoder' in model.card && model.card.decoder !== undefined;
    const result = await sample({
      model,
      ...options,
      seed: flags.seed,
      sampler: { name: 'euler', steps: flags.steps },
      batchSize: n,
      // Pixel models' samples live in [-1, 1]; latents have no such range.
      ...(latent ? { keepLatents: true } : { clipDenoised: [-1, 1] as [number, number] }),
    });
    owned.push(result.images, ...(result.latents ? [result.latents] : []));
    const captures = await captureAt(model, result.latents ?? result.images, list, flags, sites, owned);
    const shown = downscale(result.images, flags.tile);
    owned.push(shown);
    const samples = await toImages(shown);
    const rows: LabelledRow[] = [{ label: 'samples', sublabel: `${n} at seeds ${flags.seed}+`, images: samples }];
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
    await writePng(file, labelledRows(rows, { scale: flags.tile !== undefined || samples[0]!.width >= 128 ? 1 : 3, title: `${model.card?.name ?? 'model'}: attention at sigma ${flags.sigma} over its own samples` }));
    console.log(`wrote ${relative(process.cwd(), file)}: ${sites.length} site(s), ${n} sample(s)`);
  } finally {
    for (const t of owned) t.dispose();
  }
}
