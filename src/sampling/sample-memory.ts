/**
 * What a sample() run will hold in memory, estimated from its options before
 * anything is allocated (src/core/limits.ts checks it against the memory limit):
 *
 *   result  the returned images, [count, ...sampleShape] (twice, while the
 *           batches are concatenated), and the per-sample labels and seeds;
 *   batch   the tensors one step keeps alive: x, the sampler's history and
 *           temporaries, each forward's repeated input and outputs (a CFG
 *           forward carries 2N rows), and the activations of the rows that
 *           run at once (a floor: ACTIVATION_FACTOR samples' worth per row;
 *           real models often need more).
 *
 * Estimates bound requests that cannot succeed (a count of a billion, a
 * batch of millions); they do not promise that a smaller request fits.
 */
import { autoChunks } from '../model/batch-split.js';

/** Sample-sized tensors a sampler step keeps alive besides the forwards: x, D, the previous D, noise, and temporaries. */
const SAMPLER_TENSORS = 8;
/** Per row of a forward: its input, output and the slice views around them. */
const TENSORS_PER_ROW = 3;
/** Activations per row running at once, in samples' worth (a floor; the shipped UNet needs about 1000). */
const ACTIVATION_FACTOR = 64;
/** JS bookkeeping per sample of a result: a label and a BigInt seed. */
const RESULT_BYTES_PER_SAMPLE = 48;

export interface SampleMemoryInput {
  count: number;
  batchSize: number;
  /** Elements of one sample. */
  sampleElements: number;
  /** Bytes per element of the model's dtype. */
  elementBytes: number;
  /** The most rows per input sample that one stage's forwards take (Σ batch multiples). */
  rowsPerSample: number;
  /** Chunks per forward on the CPU: 'auto', a count, or 1 (also CUDA: never split). */
  parallel: number | 'auto';
  cpu: boolean;
  /** Torch threads 'auto' splits a forward over (Model.splitThreads). */
  splitThreads: number;
  /** Torch threads running chunks at once (the job threads). */
  jobThreads: number;
}

export interface SampleMemory {
  resultBytes: number;
  batchBytes: number;
  /** The largest batch whose estimate is within `limit` (0: not even one sample). */
  largestBatchWithin(limit: number): number;
}

export function estimateSampleMemory(input: SampleMemoryInput): SampleMemory {
  const sampleBytes = input.sampleElements * Math.max(4, input.elementBytes);
  const batchBytesFor = (batch: number): number => {
    const rows = batch * input.rowsPerSample;
    let inFlight = rows;
    if (input.cpu && input.parallel !== 1) {
      // Chunks run one per torch thread at a time.
      const chunks = Math.max(1, input.parallel === 'auto' ? autoChunks(rows, input.splitThreads) : input.parallel);
      inFlight = Math.min(rows, Math.min(chunks, input.jobThreads) * Math.ceil(rows / chunks));
    }
    return sampleBytes * (batch * SAMPLER_TENSORS + rows * TENSORS_PER_ROW + inFlight * ACTIVATION_FACTOR);
  };
  return {
    // The batches' results and, for a moment, their concatenation.
    resultBytes: input.count * (2 * sampleBytes + RESULT_BYTES_PER_SAMPLE),
    batchBytes: batchBytesFor(Math.min(input.batchSize, input.count)),
    largestBatchWithin(limit: number): number {
      let low = 0;
      let high = Math.min(input.batchSize, input.count);
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if (batchBytesFor(mid) <= limit) low = mid;
        else high = mid - 1;
      }
      return low;
    },
  };
}
