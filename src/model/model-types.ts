/**
 * What a model's calls take and give: forward inputs and outputs, the options
 * of call() and run(), and what run() and describe() return.
 */
import type { NativeModelDescription, Preconditioning } from '../core/native/binding.js';
import { isTensor, type Tensor } from '../core/tensor.js';
import type { Hook } from '../hooks/forward-plan.js';
import type { ModelCard } from './model-card.js';

export type { Preconditioning } from '../core/native/binding.js';

/** What a forward accepts: tensors, numbers (int or float arguments), booleans, strings, null, arrays of these. */
export type ForwardInput = Tensor | number | bigint | boolean | string | null | readonly ForwardInput[];
/** What a forward returns: tensors, arrays (tuples, lists), objects (dicts), scalars, null. */
export type ForwardOutput = Tensor | number | bigint | boolean | string | null | ForwardOutput[] | { [key: string]: ForwardOutput };

/** Options of {@link Model.call} and {@link Model.forward}-like calls. */
export interface CallOptions {
  /**
   * When it fires, the call rejects at once with ERR_ABORTED, also while its
   * forward runs: libtorch cannot interrupt a forward, so it finishes in the
   * background on its torch thread and its result is dropped, and another
   * torch thread takes its place meanwhile (a forward that never returns
   * holds its thread; see docs/reliability.md).
   */
  signal?: AbortSignal;
}

/** Options of {@link Model.run}: inputs, hooks, batch split, preconditioning. */
export interface RunOptions extends CallOptions {
  /** The method to run (default forward). */
  method?: string;
  inputs: readonly ForwardInput[];
  /** Attention and module hooks for this call only (see AttentionSite, ModuleSite and Hook). */
  hooks?: readonly Hook[];
  /**
   * CPU models: split the batch into up to this many chunks that run at the
   * same time on the torch threads, and concatenate their outputs (default 1:
   * no split; 'auto': as many as autoChunks in src/model/batch-split.ts picks
   * for this batch; ignored on CUDA). Tensor inputs whose first dimension is
   * the batch are split, others go whole to every chunk; every output tensor
   * must lead with the batch. Hook slices follow their samples. See
   * src/model/batch-split.ts.
   */
  parallel?: number | 'auto';
  /**
   * A denoiser's preconditioning, applied on the torch thread: the method is
   * called as `method(inputScale · x, full([N], time), ...rest)` for
   * `inputs = [x, ...rest]` (leave the time input out), and the output is
   * `skip · x + out · F` instead of F (EDM's c_in, c_noise, c_skip, c_out;
   * see Denoiser.scalings). It saves the four eager ops per forward that a
   * loop would otherwise run from JS, with the same results bit for bit.
   * The method must return one tensor.
   */
  preconditioning?: Preconditioning;
}

/** What {@link Model.run} returns: the output and the captured attention maps. */
export interface RunResult<T extends ForwardOutput = ForwardOutput> {
  output: T;
  /** Head-averaged attention probabilities [length, queries, keys] per captured site path. */
  captures: Map<string, Tensor>;
}

/** What {@link Model.describe} returns: methods, signatures, sites, card. */
export type ModelDescription = NativeModelDescription & { card: ModelCard | null };

/** What the addon's call returns when it runs with a hook plan. */
export interface NativeHookResult {
  output: ForwardOutput;
  captures: [number, Tensor][];
  shapes: [number, number[]][];
  /** [site, output shape, input shape] per module site the forward passed. */
  moduleShapes: [number, number[], number[]][];
}

/** Disposes every tensor inside a forward's output. */
export function disposeOutput(output: ForwardOutput): void {
  if (isTensor(output)) output.dispose();
  else if (Array.isArray(output)) output.forEach(disposeOutput);
  else if (output && typeof output === 'object') Object.values(output).forEach(disposeOutput);
}
