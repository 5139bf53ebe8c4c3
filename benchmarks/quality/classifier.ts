/**
 * The evaluation classifier (models/fashion-classifier.pt): logits and 256-d
 * penultimate features of 8-bit images. Samples are quantised to 8 bits
 * first, like the real data they are compared with (and like a saved PNG).
 */
import { loadModel, tensor, toUint8Batch, type Model, type Tensor } from '../../src/index.js';

export interface Scored {
  count: number;
  classes: number;
  featureDim: number;
  /** [count, classes] */
  logits: Float32Array;
  /** [count, featureDim] */
  features: Float32Array;
}

export class Classifier {
  private constructor(
    readonly model: Model,
    readonly path: string,
  ) {}

  static async load(path: string): Promise<Classifier> {
    const model = await loadModel(path, { device: 'cpu' });
    if (!model.methods.some((m) => m.name === 'features')) throw new Error(`${path} has no features() method`);
    return new Classifier(model, path);
  }

  /** Samples in [-1, 1] ([N, 1, 28, 28]) to uint8 [N, 28, 28] (round half up, clipped), as toUint8Batch does. */
  static async quantise(samples: Tensor): Promise<Uint8Array> {
    return (await toUint8Batch(samples, { range: [-1, 1] })).data;
  }

  /** Logits and features of 8-bit images [count, 28, 28], `batch` at a time. */
  async score(images: Uint8Array, count: number, batch = 500): Promise<Scored> {
    const plane = images.length / count;
    if (!Number.isInteger(plane)) throw new Error(`${images.length} bytes is not ${count} images`);
    const side = Math.round(Math.sqrt(plane));
    const logits: Float32Array[] = [];
    const features: Float32Array[] = [];
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const x = new Float32Array(n * plane);
      for (let i = 0; i < n * plane; i++) x[i] = images[start * plane + i]! / 127.5 - 1;
      using input = tensor(x, [n, 1, side, side]);
      using l = (await this.model.forward<Tensor>(input)) as Tensor;
      using f = (await this.model.call('features', [input])) as Tensor;
      logits.push((await l.toArray()) as Float32Array);
      features.push((await f.toArray()) as Float32Array);
    }
    const join = (parts: Float32Array[]) => {
      const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        out.set(p, offset);
        offset += p.length;
      }
      return out;
    };
    const l = join(logits);
    const f = join(features);
    return { count, classes: l.length / count, featureDim: f.length / count, logits: l, features: f };
  }

  dispose(): void {
    this.model.dispose();
  }
}
