/**
 * loadModel(): a TorchScript model on a device, ready for forwards that run
 * off the event loop.
 */
import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';

import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError, abortError } from './errors.js';
import { native, type MethodDescription, type NativeModel, type NativeModelDescription } from './native/binding.js';
import type { Dtype, ResolvedDevice, Tensor } from './tensor.js';
import { deviceSchema } from './tensor.js';
import { parseOptions } from './util/options.js';

const loadOptionsSchema = z
  .object({
    /** 'auto' (default): cuda:0 when CUDA is usable, else the CPU. */
    device: deviceSchema.default('auto'),
    /** Floating dtype of the weights; floating inputs are cast to it. Default float32. */
    dtype: z.enum(['float32', 'float16', 'bfloat16', 'float64']).default('float32'),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

export type LoadModelOptions = z.input<typeof loadOptionsSchema>;

/** What a forward accepts: tensors, numbers (int or float arguments), booleans, strings, null, arrays of these. */
export type ForwardInput = Tensor | number | bigint | boolean | string | null | readonly ForwardInput[];
/** What a forward returns: tensors, arrays (tuples, lists), objects (dicts), scalars, null. */
export type ForwardOutput = Tensor | number | bigint | boolean | string | null | ForwardOutput[] | { [key: string]: ForwardOutput };

export interface CallOptions {
  /** Checked before the job starts (a running forward is not interrupted). */
  signal?: AbortSignal;
}

export type ModelDescription = NativeModelDescription & { card: unknown };

export class Model implements Disposable, AsyncDisposable {
  readonly #native: NativeModel;
  /** Calls accepted and not yet settled (queued for a pool slot or running). */
  #pending = 0;
  #disposed = false;
  /** The parsed model.json stored in the archive, or null when it has none. */
  readonly card: unknown;

  private constructor(handle: NativeModel, card: unknown) {
    this.#native = handle;
    this.card = card;
  }

  /** @internal Use loadModel(). */
  static async load(path: string, options: LoadModelOptions = {}): Promise<Model> {
    const { device, dtype, signal } = parseOptions(loadOptionsSchema, options, 'loadModel options');
    if (signal?.aborted) throw abortError(signal);
    const absolute = resolve(path);
    try {
      await access(absolute, constants.R_OK);
    } catch {
      throw new TorchGuidanceError(ErrorCodes.MODEL_NOT_FOUND, `no readable model file at '${absolute}'. Fix: check the path.`);
    }
    const handle = await native.Model.load(absolute, { device, dtype });
    let card: unknown = null;
    try {
      card = handle.card === null ? null : JSON.parse(handle.card);
    } catch (error) {
      handle.dispose();
      throw new TorchGuidanceError(
        ErrorCodes.MODEL_CARD,
        `the model card (model.json inside '${absolute}') is not valid JSON: ${(error as Error).message}. ` +
          'Fix: re-export with torch.jit.save(..., _extra_files={"model.json": json.dumps(card)}).',
        { cause: error },
      );
    }
    if (signal?.aborted) {
      handle.dispose();
      throw abortError(signal);
    }
    return new Model(handle, card);
  }

  /**
   * Runs `forward` on a torch thread under inference mode; the output stays on
   * the model's device. `T` narrows the result type (`forward<Tensor>(...)`).
   */
  forward<T extends ForwardOutput = ForwardOutput>(...inputs: ForwardInput[]): Promise<T> {
    return this.call('forward', inputs) as Promise<T>;
  }

  /** Runs any exported method (e.g. a classifier's `features`). */
  async call(method: string, inputs: readonly ForwardInput[], options: CallOptions = {}): Promise<ForwardOutput> {
    this.#checkLive();
    // A call holds the model from the moment it is made: dispose() while it
    // waits for a pool slot or runs only frees the model once it settles.
    if (options.signal?.aborted) throw abortError(options.signal);
    this.#pending++;
    try {
      // The native call checks the inputs against the method's signature,
      // then queues the forward on a torch thread.
      return (await this.#native.call(method, inputs as unknown[])) as ForwardOutput;
    } finally {
      this.#pending--;
      if (this.#disposed && this.#pending === 0) this.#native.dispose();
    }
  }

  /** Device ("cpu" or "cuda:N"), dtype, parameter count, methods and their signatures. */
  describe(): ModelDescription {
    this.#checkLive();
    return { ...this.#native.describe(), card: this.card };
  }

  /** The signatures of the exported methods. */
  get methods(): MethodDescription[] {
    return this.#native.describe().methods;
  }

  get device(): ResolvedDevice {
    return this.#native.device;
  }

  get dtype(): Dtype {
    return this.#native.dtype;
  }

  /** Forwards completed on this model (every method), for tests and plans. */
  get forwardCount(): number {
    return this.#native.forwardCount;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the model; calls already made finish first. Idempotent. */
  dispose(): void {
    this.#disposed = true;
    if (this.#pending === 0) this.#native.dispose();
  }

  #checkLive(): void {
    if (this.#disposed) {
      throw new TorchGuidanceError(
        ErrorCodes.DISPOSED,
        'this Model was disposed and can no longer be used. Fix: load it again, or dispose it after its last call.',
      );
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/**
 * Loads a TorchScript archive: torch::jit::load, eval, move to the device and
 * dtype, freeze. Reads the archive's model.json (the model card) when present.
 */
export function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  return Model.load(path, options);
}
