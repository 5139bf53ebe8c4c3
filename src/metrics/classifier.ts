/**
 * An evaluation classifier: a TorchScript model whose card says
 * `kind: 'classifier'`, whose forward gives logits and whose `features`
 * method gives the penultimate features that the Fréchet distance and
 * precision/recall are measured in (models/fashion-classifier.pt is one).
 * It scores 8-bit images, the form samples are saved and compared in, so a
 * sample scores the same from memory as from its PNG or .npz.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { UInt8Batch } from '../image/from-tensor.js';
import { type ClassifierCard } from '../model/model-card.js';
import { loadModel, type LoadModelOptions, type Model } from '../model/model.js';
import { tensor, type Tensor } from '../core/tensor.js';

/** A classifier's view of `count` images: logits [count, classes] and features [count, featureDim]. */
export interface ClassifierScores {
  count: number;
  classes: number;
  featureDim: number;
  logits: Float32Array;
  features: Float32Array;
}

export interface ScoreOptions {
  /** Images per forward (default 500). */
  batchSize?: number;
  /** Whether to compute logits (default true); without them `logits` is empty and scoring takes half the time. */
  logits?: boolean;
  signal?: AbortSignal;
}

export class Classifier {
  private constructor(
    readonly model: Model,
    readonly path: string,
    readonly card: ClassifierCard,
  ) {}

  /** Loads a classifier; refuses a model whose card is not a classifier card or that has no `features` method. */
  static async load(path: string, options: LoadModelOptions = {}): Promise<Classifier> {
    const model = await loadModel(path, options);
    try {
      const card = model.card as { kind?: unknown } | null;
      if (card?.kind !== 'classifier') {
        throw new TorchGuidanceError(
          ErrorCodes.INVALID_ARGUMENT,
          `${path} is not an evaluation classifier: its model card ${card ? "has no kind: 'classifier'" : 'is missing'}. ` +
            "Fix: pass a classifier exported with a card of kind 'classifier' and a features() method (see models/README.md).",
        );
      }
      if (!model.methods.some((m) => m.name === 'features')) {
        throw new TorchGuidanceError(
          ErrorCodes.METHOD_NOT_FOUND,
          `${path} has no features() method, which the Fréchet distance and precision/recall are measured in. Fix: export it with @torch.jit.export.`,
        );
      }
      return new Classifier(model, path, card as ClassifierCard);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }

  /**
   * Logits and features of 8-bit NHWC images, mapped to [-1, 1] as the
   * classifier was trained. Equal-channel RGB (what `sample --rgb` writes)
   * goes to a grayscale classifier by taking the mean of the channels, and
   * grayscale to an RGB one by repeating it; other shapes are refused.
   */
  async score(images: UInt8Batch, options: ScoreOptions = {}): Promise<ClassifierScores> {
    const [channels, height, width] = this.card.sampleShape as [number, number, number];
    const channelsFit = images.channels === channels || (channels === 1 && images.channels === 3) || (channels === 3 && images.channels === 1);
    if (images.height !== height || images.width !== width || !channelsFit) {
      throw new TorchGuidanceError(
        ErrorCodes.INPUT_SHAPE,
        `${this.path} takes ${channels}×${height}×${width} images; got ${images.channels}×${images.height}×${images.width}. ` +
          'Fix: evaluate samples of the size the classifier was trained on.',
      );
    }
    if (images.count === 0) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, 'no images to score.');
    const batchSize = options.batchSize ?? 500;
    const wantLogits = options.logits ?? true;
    const logits: Float32Array[] = [];
    const features: Float32Array[] = [];
    for (let start = 0; start < images.count; start += batchSize) {
      const n = Math.min(batchSize, images.count - start);
      const x = toClassifierInput(images, start, n, channels);
      using input = tensor(x, [n, channels, height, width], { device: this.model.device });
      // On the CPU each pass splits its batch across the torch threads, as
      // sample() does: faster than one whole batch (batch 500: 174-251 ms vs
      // 272-334 per pass on 2 cores) and than running the two passes at once.
      const pass = async (method: string) => {
        using out = (await this.model.run<Tensor>({ method, inputs: [input], parallel: 'auto', signal: options.signal })).output;
        return (await out.toArray()) as Float32Array;
      };
      if (wantLogits) logits.push(await pass('forward'));
      features.push(await pass('features'));
    }
    const l = concat(logits);
    const f = concat(features);
    return { count: images.count, classes: wantLogits ? l.length / images.count : this.card.numClasses, featureDim: f.length / images.count, logits: l, features: f };
  }

  /** Frees the classifier's model. Idempotent. */
  dispose(): void {
    this.model.dispose();
  }

  /** Calls {@link Classifier.dispose} (for `using`). */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Images [start, start + n) of an NHWC uint8 batch as NCHW float32 in [-1, 1] with `channels` channels. */
function toClassifierInput(images: UInt8Batch, start: number, n: number, channels: number): Float32Array {
  const { height, width, channels: from, data } = images;
  const plane = height * width;
  const out = new Float32Array(n * channels * plane);
  for (let i = 0; i < n; i++) {
    const base = (start + i) * plane * from;
    for (let p = 0; p < plane; p++) {
      if (channels === from) {
        for (let c = 0; c < channels; c++) out[(i * channels + c) * plane + p] = data[base + p * from + c]! / 127.5 - 1;
      } else if (channels === 1) {
        let sum = 0;
        for (let c = 0; c < 3; c++) sum += data[base + p * from + c]!;
        out[i * plane + p] = sum / 3 / 127.5 - 1;
      } else {
        const v = data[base + p * from]! / 127.5 - 1;
        for (let c = 0; c < 3; c++) out[(i * 3 + c) * plane + p] = v;
      }
    }
  }
  return out;
}

/** Loads an evaluation classifier (`Classifier.load`): an async factory like `loadModel`. */
export function loadClassifier(path: string, options: LoadModelOptions = {}): Promise<Classifier> {
  return Classifier.load(path, options);
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
