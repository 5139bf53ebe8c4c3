/**
 * loadModel(): a TorchScript model on a device, ready for forwards that run
 * off the event loop.
 */
import { setMaxListeners } from 'node:events';
import { resolve } from 'node:path';

import { z } from 'zod';

import { type AttentionCandidate, type AttentionSite, type NativePlanEntry, siteFromProbe } from '../hooks/attention.js';
import { type Chunk, autoChunks, catCaptures, catOutputs, chunkBatch, entriesForChunk, modulesForChunk } from './batch-split.js';
import { autoSplitThreads } from '../core/blas.js';
import { type Hook, planForward } from '../hooks/forward-plan.js';
import { type ModuleSite, type NativeModuleEntry, moduleSiteFromProbe } from '../hooks/module-hooks.js';
import { ErrorCodes, TorchGuidanceError, abortError } from '../core/errors.js';
import { resourceLimits } from '../core/limits.js';
import { loadDecoderFor } from './decode.js';
import { checkModelCard, type ModelCard } from './model-card.js';
import { nullConditionsOf } from './model-conditions.js';
import { type ProbeShapes, probeDivisors, probeInputs, scaleProbe } from './model-probe.js';
import { native, type MethodDescription, type NativeModel, type NativeModelDescription, type Preconditioning } from '../core/native/binding.js';
import type { Dtype, ResolvedDevice, Tensor } from '../core/tensor.js';
import { isTensor } from '../core/tensor.js';
import { deviceSchema } from '../core/tensor.js';
import { parseOptions } from '../core/options.js';

export type { Preconditioning } from '../core/native/binding.js';

const loadOptionsSchema = z
  .object({
    /** 'auto' (default): cuda:0 when CUDA is usable, else the CPU. */
    device: deviceSchema.default('auto'),
    /** Floating dtype of the weights; floating inputs are cast to it. Default float32. */
    dtype: z.enum(['float32', 'float16', 'bfloat16', 'float64']).default('float32'),
    /** Find attention sites and wrap them in hook ops (default true); false loads the graph untouched. */
    attentionHooks: z.boolean().default(true),
    /**
     * 'scan' (default): the file is checked before any of its code runs, and
     * refused (ERR_UNTRUSTED_MODEL) if it could reach outside the model
     * (files, printing, process-wide state, other processes; see
     * docs/reliability.md). 'full': the file is trusted like code you run;
     * only its structure and sizes are checked.
     */
    trust: z.enum(['scan', 'full']).default('scan'),
    /** Rejects with ERR_ABORTED when it fires, also while the file loads. */
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/**
 * Options of {@link loadModel}: `device` (`'auto'`: cuda:0 when usable, else
 * the CPU), `dtype` (of the weights, default float32), `attentionHooks`
 * (default true; false loads the graph untouched), `signal`.
 */
export type LoadModelOptions = z.input<typeof loadOptionsSchema>;

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
   * no split; 'auto': as many as autoChunks in src/batch-split.ts picks for
   * this batch; ignored on CUDA). Tensor inputs whose first dimension is the
   * batch are split, others go whole to every chunk; every output tensor must
   * lead with the batch. Hook slices follow their samples. See src/batch-split.ts.
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

interface NativeHookResult {
  output: ForwardOutput;
  captures: [number, Tensor][];
  shapes: [number, number[]][];
  /** [site, output shape, input shape] per module site the forward passed. */
  moduleShapes: [number, number[], number[]][];
}

/** What {@link Model.describe} returns: methods, signatures, sites, card. */
export type ModelDescription = NativeModelDescription & { card: ModelCard | null };

/**
 * A loaded TorchScript model. Make one with {@link loadModel}; every call runs
 * on a torch thread and returns a Promise; dispose it (or `using`) when done.
 */
export class Model implements Disposable, AsyncDisposable {
  readonly #native: NativeModel;
  /** Calls accepted and not yet settled (queued for a pool slot or running). */
  #pending = 0;
  #disposed = false;
  #sites: AttentionSite[];
  #moduleSites: ModuleSite[];
  /** A version 2 card's null conditions stored in the archive, by input name (model-conditions.ts). */
  #nulls = new Map<string, Tensor>();
  /** How this model was loaded (its decoder loads the same way). */
  #loaded: { path: string; options: LoadModelOptions } = { path: '', options: {} };
  /** The decoder the card names, loaded on first use (decode.ts). */
  #decoder: Promise<Model> | undefined;
  /** The archive's model.json, checked against the card schema; null when it has none. */
  readonly card: ModelCard | null;

  private constructor(handle: NativeModel, card: ModelCard | null) {
    this.#native = handle;
    this.card = card;
    this.#sites = handle.attentionSites.map((site) => siteFromProbe(site, undefined, undefined));
    this.#moduleSites = handle.moduleSites.map((site) => moduleSiteFromProbe(site, undefined));
  }

  /** @internal Use loadModel(). */
  static async load(path: string, options: LoadModelOptions = {}): Promise<Model> {
    const { device, dtype, attentionHooks, trust, signal } = parseOptions(loadOptionsSchema, options, 'loadModel options');
    if (signal?.aborted) throw abortError(signal);
    const absolute = resolve(path);
    // The addon opens regular files only (never waiting on a FIFO), checks the
    // archive's sizes against the memory limit and, unless trusted, its code.
    const handle = await native.Model.load(absolute, {
      device,
      dtype,
      attentionHooks,
      trust,
      memoryLimit: resourceLimits().memoryBytes,
      ...(signal ? { signal } : {}),
    });
    let card: ModelCard | null = null;
    if (handle.card !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(handle.card);
      } catch (error) {
        handle.dispose();
        throw new TorchGuidanceError(
          ErrorCodes.MODEL_CARD,
          `the model card (model.json inside '${absolute}') is not valid JSON: ${(error as Error).message}. ` +
            'Fix: re-export with torch.jit.save(..., _extra_files={"model.json": json.dumps(card)}).',
          { cause: error },
        );
      }
      const checked = checkModelCard(parsed);
      if ('problems' in checked) {
        handle.dispose();
        throw new TorchGuidanceError(
          ErrorCodes.MODEL_CARD,
          `the model card (model.json inside '${absolute}') is invalid: ${checked.problems.join('; ')}. ` +
            'Fix: correct those fields and re-export; models/README.md describes each field.',
        );
      }
      card = checked.card;
    }
    if (signal?.aborted) {
      handle.dispose();
      throw abortError(signal);
    }
    const model = new Model(handle, card);
    model.#loaded = { path: absolute, options: { device, dtype, attentionHooks: false, trust } };
    try {
      await model.#probeFromCard();
      model.#nulls = nullConditionsOf(handle, card, absolute, device);
    } catch (error) {
      model.dispose();
      throw error;
    }
    return model;
  }

  /**
   * Probes the sites with inputs built from the card (see model-probe.ts): at
   * a reduced size when the sites scale with it, else at full size. A card
   * that does not describe the inputs, or a probe that fails, leaves the
   * sites unprobed; model.probe() with real inputs fills them in.
   */
  async #probeFromCard(): Promise<void> {
    const card = this.card;
    if ((this.#sites.length === 0 && this.#moduleSites.length === 0) || !card || !('sampleShape' in card)) return;
    const signature = this.methods.find((m) => m.name === 'forward');
    if (!signature) return;
    // One sample's activations are some multiple of the sample; a card whose
    // sample alone is a sizeable share of the memory limit is not probed.
    const sampleBytes = card.sampleShape.reduce((a, b) => a * b, 1) * 4;
    if (sampleBytes * PROBE_ACTIVATION_FACTOR > resourceLimits().memoryBytes) return;
    const spatial = card.sampleShape.length >= 3 ? ([card.sampleShape.at(-2)!, card.sampleShape.at(-1)!] as const) : undefined;
    const at = (divisor: number) => this.#probeShapesFromCard(card, signature.inputs.length, divisor);
    for (const k of probeDivisors(card.sampleShape)) {
      const small = await at(k);
      const larger = small && (await at(k / 2));
      const scaled = small && larger && scaleProbe(small, larger, k);
      if (scaled) return this.#applyProbe({ sites: scaled, modules: larger!.modules }, spatial);
    }
    const full = await at(1);
    if (full) this.#applyProbe(full, spatial);
  }

  async #probeShapesFromCard(card: { sampleShape: readonly number[] }, inputCount: number, divisor: number): Promise<ProbeShapes | undefined> {
    const inputs = probeInputs(card as Parameters<typeof probeInputs>[0], inputCount, divisor);
    if (!inputs) return undefined;
    try {
      return await this.#probeShapes(inputs);
    } catch {
      return undefined;
    } finally {
      for (const input of inputs) input.dispose();
    }
  }

  async #probeShapes(inputs: readonly ForwardInput[]): Promise<ProbeShapes> {
    const x = inputs[0];
    const batch = isTensor(x) ? x.shape[0]! : 1;
    const result = (await this.#native.call('forward', inputs as unknown[], { batch, probe: true })) as NativeHookResult;
    disposeOutput(result.output);
    return {
      sites: new Map(result.shapes),
      modules: new Map(result.moduleShapes.map(([id, output, input]) => [id, { output, input }])),
    };
  }

  #applyProbe(shapes: ProbeShapes, spatial: readonly [number, number] | undefined): void {
    this.#sites = this.#sites.map((site) => siteFromProbe(site, shapes.sites.get(site.id), spatial));
    const natives = new Map(this.#native.moduleSites.map((site) => [site.id, site]));
    this.#moduleSites = this.#moduleSites.map((site) => moduleSiteFromProbe(natives.get(site.id)!, shapes.modules.get(site.id)));
  }

  /**
   * The attention sites of forward: path, kind, self/cross, token counts and
   * query grid. Probed at load from the model card; see probe().
   */
  get attentionSites(): readonly AttentionSite[] {
    return this.#sites;
  }

  /**
   * Every softmax and fused attention op the attention pass saw in forward,
   * in program order: the hooked ones with their site, the others with the
   * reason they were left alone. A hook whose selector reaches attention left
   * alone fails (ERR_UNHOOKED_ATTENTION) instead of perturbing part of it.
   */
  get attentionReport(): readonly AttentionCandidate[] {
    this.#checkLive();
    return this.#native.attentionCandidates;
  }

  /**
   * The null conditions a version 2 card stores in the archive ([1, ...shape]
   * each, on the model's device), by condition input name; what the
   * unconditional branch gets for inputs whose card null is a record.
   */
  get nullConditions(): ReadonlyMap<string, Tensor> {
    this.#checkLive();
    return this.#nulls;
  }

  /**
   * The module outputs a forward can hook (noise, skip): the card's time
   * embedding and the model's own blocks, with whether each can be skipped.
   * Probed at load from the model card; see probe().
   */
  get moduleSites(): readonly ModuleSite[] {
    return this.#moduleSites;
  }

  /**
   * Runs forward once on `inputs` and records each attention site's shape
   * (token counts, self/cross, query grid) and each module site's shapes
   * (whether it can be skipped). loadModel() does this with inputs built
   * from the card; call it for models without one.
   */
  async probe(...inputs: ForwardInput[]): Promise<readonly AttentionSite[]> {
    this.#checkLive();
    const x = inputs[0];
    const spatial = isTensor(x) && x.shape.length >= 4 ? ([x.shape.at(-2)!, x.shape.at(-1)!] as const) : undefined;
    this.#applyProbe(await this.#probeShapes(inputs), spatial);
    return this.#sites;
  }

  /**
   * Runs a method with hooks for this call only: each hook picks sites and a
   * batch slice, and replaces the probabilities by the identity, blurs the
   * queries, captures the probabilities or skips the attention block
   * (attention hooks, `sites`), or adds seeded noise to a module's output or
   * skips the module (module hooks, `modules`). Other slices are computed
   * exactly as without hooks.
   */
  async run<T extends ForwardOutput = ForwardOutput>(options: RunOptions): Promise<RunResult<T>> {
    this.#checkLive();
    const { method = 'forward', inputs, hooks = [], signal, parallel = 1, preconditioning } = options;
    if (parallel !== 'auto' && (!Number.isInteger(parallel) || parallel < 1)) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `run: parallel must be a positive integer or 'auto', got ${String(parallel)}.`);
    }
    if (preconditioning) checkPreconditioning(preconditioning);
    if (signal?.aborted) throw abortError(signal);
    const first = inputs.find(isTensor);
    const batch = first && first.shape.length > 0 ? first.shape[0]! : 1;
    const { entries, modules } = planForward(hooks, this.#sites, this.#moduleSites, batch, this.attentionReport);
    const parts = parallel === 'auto' ? autoChunks(batch, autoSplitThreads()) : parallel;
    const chunks = this.device === 'cpu' && first ? chunkBatch(batch, parts, modules) : [{ start: 0, end: batch }];
    this.#pending++;
    try {
      const result =
        chunks.length === 1
          ? ((await this.#native.call(method, inputs as unknown[], { batch, entries, modules, preconditioning }, signal)) as NativeHookResult)
          : await this.#runChunks(method, inputs, batch, chunks, entries, modules, preconditioning, chunkSignal(signal));
      const byId = new Map(this.#sites.map((site) => [site.id, site.path]));
      return {
        output: result.output as T,
        captures: new Map(result.captures.map(([site, t]) => [byId.get(site)!, t])),
      };
    } finally {
      this.#pending--;
      if (this.#disposed && this.#pending === 0) this.#release();
    }
  }

  /** run() with the batch split into chunks that run at once; their outputs and captures concatenated. */
  async #runChunks(
    method: string,
    inputs: readonly ForwardInput[],
    batch: number,
    chunks: readonly Chunk[],
    entries: readonly NativePlanEntry[],
    modules: readonly NativeModuleEntry[],
    preconditioning: Preconditioning | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Pick<NativeHookResult, 'output' | 'captures'>> {
    const views: Tensor[] = [];
    const parts: NativeHookResult[] = [];
    try {
      // async: a synchronous throw (say, inputs the signature refuses) becomes
      // a rejection, so the chunks already started are still awaited and freed.
      const settled = await Promise.allSettled(
        chunks.map(async (chunk) => {
          const length = chunk.end - chunk.start;
          const chunkInputs = inputs.map((input) => {
            if (!isTensor(input) || input.shape[0] !== batch) return input;
            const view = input.narrow(chunk.start, length);
            views.push(view);
            return view;
          });
          const plan = { batch: length, entries: entriesForChunk(entries, chunk), modules: modulesForChunk(modules, chunk), preconditioning };
          return (await this.#native.call(method, chunkInputs as unknown[], plan, signal)) as NativeHookResult;
        }),
      );
      for (const r of settled) if (r.status === 'fulfilled') parts.push(r.value);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      return {
        output: catOutputs(parts.map((p) => p.output), chunks),
        captures: catCaptures(parts.map((p) => p.captures)),
      };
    } finally {
      for (const view of views) view.dispose();
      for (const part of parts) {
        disposeOutput(part.output);
        for (const [, t] of part.captures) t.dispose();
      }
    }
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
      return (await this.#native.call(method, inputs as unknown[], undefined, options.signal)) as ForwardOutput;
    } finally {
      this.#pending--;
      if (this.#disposed && this.#pending === 0) this.#release();
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

  /**
   * Of those, the forwards that ran the graph with the hook ops taken out
   * (no hook had anything to do), which costs what the untouched model costs.
   */
  get plainForwardCount(): number {
    return this.#native.plainForwardCount;
  }

  /**
   * The graph the last forward ran, as libtorch optimised it for the inputs
   * it saw (shapes specialised, fusion groups formed), in TorchScript's text
   * form; null before any forward (loading runs one when it probes the
   * attention sites). For diagnosis: compare it with
   * Python's `torch.jit.last_executed_optimized_graph()` for the same file
   * (`benchmarks/graph-vs-python.ts` does).
   */
  lastOptimizedGraph(): string | null {
    this.#checkLive();
    return this.#native.lastOptimizedGraph();
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the model; calls already made finish first. Idempotent. */
  dispose(): void {
    this.#disposed = true;
    if (this.#pending === 0) this.#release();
  }

  /** Frees the native model, the null conditions and the decoder, once no call holds them. */
  #release(): void {
    for (const t of this.#nulls.values()) t.dispose();
    this.#nulls.clear();
    this.#decoder?.then((d) => d.dispose(), () => {});
    this.#native.dispose();
  }

  /**
   * The decoder of a latent model: the TorchScript file its card names
   * (`decoder.file`, next to this model's file), loaded on first use with
   * this model's device, dtype and trust, and kept until this model is
   * disposed. Null when the card names none.
   */
  async loadDecoder(): Promise<Model | null> {
    this.#checkLive();
    const card = this.card;
    if (!card || !('decoder' in card) || !card.decoder) return null;
    const ref = card.decoder;
    this.#decoder ??= loadDecoderFor(this.#loaded.path, ref, this.#loaded.options, (path, options) => Model.load(path, options));
    try {
      return await this.#decoder;
    } catch (error) {
      this.#decoder = undefined;
      throw error;
    }
  }

  #checkLive(): void {
    if (this.#disposed) {
      throw new TorchGuidanceError(
        ErrorCodes.DISPOSED,
        'this Model was disposed and can no longer be used. Fix: load it again, or dispose it after its last call.',
      );
    }
  }

  /** Calls {@link Model.dispose} (for `using`). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Calls {@link Model.dispose} (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/**
 * The probe at load runs one sample; its activations take some multiple of
 * the sample's bytes (a UNet's widest feature maps hold tens of channels at
 * full resolution). Samples larger than the memory limit over this are not
 * probed at load.
 */
const PROBE_ACTIVATION_FACTOR = 256;

/**
 * One signal for the chunks of a split forward: each native call listens on
 * its signal, and dozens of chunks on the caller's own would trip Node's
 * leak warning for more than 10 listeners; this adds one listener to it.
 */
function chunkSignal(signal: AbortSignal | undefined): AbortSignal | undefined {
  if (!signal) return undefined;
  const shared = AbortSignal.any([signal]);
  setMaxListeners(0, shared);
  return shared;
}

/** Disposes every tensor inside a forward's output. */
export function disposeOutput(output: ForwardOutput): void {
  if (isTensor(output)) output.dispose();
  else if (Array.isArray(output)) output.forEach(disposeOutput);
  else if (output && typeof output === 'object') Object.values(output).forEach(disposeOutput);
}

/**
 * Loads a TorchScript archive: torch::jit::load, eval, move to the device and
 * dtype, freeze. Reads the archive's model.json (the model card) when present.
 */
export function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  return Model.load(path, options);
}

function checkPreconditioning(p: Preconditioning): void {
  for (const key of ['inputScale', 'time', 'skip', 'out'] as const) {
    if (typeof p[key] !== 'number' || !Number.isFinite(p[key])) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `run: preconditioning.${key} must be a finite number, got ${String(p[key])}. Fix: pass the scalings of a finite sigma (Denoiser.scalings).`,
      );
    }
  }
}
