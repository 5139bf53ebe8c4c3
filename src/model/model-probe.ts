/**
 * The probe forward loadModel() runs to learn each attention site's token
 * counts and query grid (and which blocks can be skipped), built from the
 * model card.
 *
 * A full-size probe of a large latent model costs what a forward costs (tens
 * of seconds for an SD-size UNet on a CPU), so the probe runs at a reduced
 * spatial size when the architecture allows: twice, at 1/k and 2/k of the
 * sample's height and width. When every site's queries grow exactly 4× from
 * the one to the other (and its keys 4× for self-attention, not at all for
 * cross-attention), the tokens are those of a grid that scales with the
 * input, and the full-size counts follow: queries × k². Any other outcome
 * (the model only takes its own size, as a DiT's fixed position embedding
 * does; or sizes that round) falls back to one full-size probe.
 */
import type { DenoiserCard } from './model-card.js';
import { resourceLimits } from '../core/limits.js';
import { isTensor, randn, tensor, type Tensor } from '../core/tensor.js';

/** What one probe forward records: each attention site's logits shape, each module site's output and input shapes. */
export interface ProbeShapes {
  sites: Map<number, number[]>;
  modules: Map<number, { output: number[]; input: number[] }>;
}

/**
 * Spatial divisors tried, largest first: 1/8 of the size passes an SD UNet's
 * three downsamplings; the second probe runs at 2/k, so at most half size.
 */
const DIVISORS = [8, 4] as const;

/** The divisors k to try for a sample of `shape` ([C, H, W]): H and W divisible by k, and by k/2. */
export function probeDivisors(shape: readonly number[]): number[] {
  if (shape.length < 3) return [];
  const [height, width] = [shape.at(-2)!, shape.at(-1)!];
  return DIVISORS.filter((k) => height % k === 0 && width % k === 0);
}

/**
 * One-sample inputs for a denoiser forward(x, t, ...conditions) from its
 * card, with x at 1/divisor of the sample's height and width: x ~ N(0, 1),
 * t = 500, the null label, or zeros for tensor and named conditions.
 * Undefined when the card does not describe every input of the signature.
 */
export function probeInputs(card: { sampleShape: readonly number[]; conditioning?: DenoiserCard['conditioning'] }, inputCount: number, divisor = 1): Tensor[] | undefined {
  const shape = [...card.sampleShape];
  if (divisor > 1) {
    shape[shape.length - 2] = shape.at(-2)! / divisor;
    shape[shape.length - 1] = shape.at(-1)! / divisor;
  }
  const inputs: Tensor[] = [randn([1, ...shape], { seed: 0 })];
  if (inputCount > 1) inputs.push(tensor(new Float32Array([500]), [1]));
  const conditioning = card.conditioning ?? { kind: 'none' as const };
  if (conditioning.kind === 'class') inputs.push(tensor(new BigInt64Array([BigInt(conditioning.nullLabel)]), [1]));
  if (conditioning.kind === 'tensor') inputs.push(zeros([1, ...conditioning.shape], 'float32'));
  if (conditioning.kind === 'named') {
    for (const input of Object.values(conditioning.inputs)) inputs.push(zeros([1, ...input.shape], input.dtype));
  }
  if (inputs.length === inputCount) return inputs;
  for (const input of inputs) if (isTensor(input)) input.dispose();
  return undefined;
}

function zeros(shape: number[], dtype: string): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'int64') return tensor(new BigInt64Array(size), shape);
  if (dtype === 'int32') return tensor(new Int32Array(size), shape);
  return tensor(new Float32Array(size), shape);
}

/**
 * The sites' logits shapes at full size from probes at 1/k (`small`) and
 * 2/k (`larger`) of the sample's size, or undefined when some site does not
 * scale as the tokens of a grid.
 */
export function scaleProbe(small: ProbeShapes, larger: ProbeShapes, k: number): Map<number, number[]> | undefined {
  if (small.sites.size !== larger.sites.size) return undefined;
  const full = new Map<number, number[]>();
  for (const [site, a] of small.sites) {
    const b = larger.sites.get(site);
    if (!b || a.length < 3 || b.length !== a.length) return undefined;
    const [qa, ka] = [a.at(-2)!, a.at(-1)!];
    const [qb, kb] = [b.at(-2)!, b.at(-1)!];
    if (qb !== 4 * qa) return undefined;
    const self = kb === 4 * ka && ka === qa;
    const cross = kb === ka;
    if (!self && !cross) return undefined;
    full.set(site, [...a.slice(0, -2), qa * k * k, self ? ka * k * k : ka]);
  }
  return full;
}

/**
 * The probe at load runs one sample; its activations take some multiple of
 * the sample's bytes (a UNet's widest feature maps hold tens of channels at
 * full resolution). Samples larger than the memory limit over this are not
 * probed at load.
 */
const PROBE_ACTIVATION_FACTOR = 256;

/** What the card must say for a probe: the sample's shape, and the conditioning when there is one. */
type ProbeCard = Parameters<typeof probeInputs>[0];

/**
 * The sites' shapes at full size, from probes with inputs built from the
 * card: at a reduced size when the sites scale with it, else at full size.
 * `probe` runs one forward and records the shapes. Undefined when the card
 * does not describe the inputs, the sample is too large to probe within the
 * memory limit, or every probe failed; model.probe() with real inputs fills
 * the sites in then.
 */
export async function probeFromCard(card: ProbeCard, inputCount: number, probe: (inputs: readonly Tensor[]) => Promise<ProbeShapes>): Promise<ProbeShapes | undefined> {
  // One sample's activations are some multiple of the sample; a card whose
  // sample alone is a sizeable share of the memory limit is not probed.
  const sampleBytes = card.sampleShape.reduce((a, b) => a * b, 1) * 4;
  if (sampleBytes * PROBE_ACTIVATION_FACTOR > resourceLimits().memoryBytes) return undefined;
  const at = (divisor: number) => probeAt(card, inputCount, divisor, probe);
  for (const k of probeDivisors(card.sampleShape)) {
    const small = await at(k);
    const larger = small && (await at(k / 2));
    const scaled = small && larger && scaleProbe(small, larger, k);
    if (scaled) return { sites: scaled, modules: larger!.modules };
  }
  return at(1);
}

/** One probe at 1/divisor of the sample's size; undefined when the card cannot build its inputs or the forward fails. */
async function probeAt(card: ProbeCard, inputCount: number, divisor: number, probe: (inputs: readonly Tensor[]) => Promise<ProbeShapes>): Promise<ProbeShapes | undefined> {
  const inputs = probeInputs(card, inputCount, divisor);
  if (!inputs) return undefined;
  try {
    return await probe(inputs);
  } catch {
    return undefined;
  } finally {
    for (const input of inputs) input.dispose();
  }
}
