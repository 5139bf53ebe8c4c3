/**
 * loadModel(): a TorchScript model on a device, ready for forwards that run
 * off the event loop. Opening the archive is in model-load.ts, the probe of
 * its sites in model-probe.ts, the batch split of run() in model-run.ts, and
 * the types of its calls in model-types.ts.
 */
import { autoSplitThreads } from '../core/blas.js';
import { torchThreads } from '../core/threads.js';
import { ErrorCodes, TorchGuidanceError, abortError } from '../core/errors.js';
import type { MethodDescription, NativeModel } from '../core/native/binding.js';
import { isTensor, type Dtype, type ResolvedDevice, type Tensor } from '../core/tensor.js';
import { type AttentionCandidate, type AttentionSite, siteFromProbe } from '../hooks/attention.js';
import { planForward } from '../hooks/forward-plan.js';
import { type ModuleSite, moduleSiteFromProbe } from '../hooks/module-hooks.js';
import { autoChunks, chunkBatch } from './batch-split.js';
import { loadDecoderFor } from './decode.js';
import type { ModelCard } from './model-card.js';
import { nullConditionsOf } from './model-conditions.js';
import { type LoadModelOptions, openModel } from './model-load.js';
import { type ProbeShapes, probeFromCard } from './model-probe.js';
import { type NativePlan, checkRunOptions, chunkIntraOpThreads, runChunks } from './model-run.js';
import {
  disposeOutput,
  type CallOptions,
  type ForwardInput,
  type ForwardOutput,
  type ModelDescription,
  type NativeHookResult,
  type RunOptions,
  type RunResult,
} from './model-types.js';

export type { LoadModelOptions } from './model-load.js';
export {
  disposeOutput,
  type CallOptions,
  type ForwardInput,
  type ForwardOutput,
  type ModelDescription,
  type Preconditioning,
  type RunOptions,
  type RunResult,
} from './model-types.js';

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
  /** loadModel's `threads`: the most torch threads a CPU forward splits over. */
  #threads: number | undefined;
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
    const opened = await openModel(path, options);
    const { device, dtype, trust, threads } = opened.options;
    const model = new Model(opened.handle, opened.card);
    model.#loaded = { path: opened.path, options: { device, dtype, attentionHooks: false, trust, ...(threads === undefined ? {} : { threads }) } };
    model.#threads = threads;
    try {
      await model.#probeFromCard();
      model.#nulls = nullConditionsOf(opened.handle, opened.card, opened.path, device);
    } catch (error) {
      model.dispose();
      throw error;
    }
    return model;
  }

  /** Probes the sites with inputs built from the card (model-probe.ts); a card that cannot leaves them unprobed. */
  async #probeFromCard(): Promise<void> {
    const card = this.card;
    if ((this.#sites.length === 0 && this.#moduleSites.length === 0) || !card || !('sampleShape' in card)) return;
    const signature = this.methods.find((m) => m.name === 'forward');
    if (!signature) return;
    const shapes = await probeFromCard(card as Parameters<typeof probeFromCard>[0], signature.inputs.length, (inputs) => this.#probeShapes(inputs));
    const spatial = card.sampleShape.length >= 3 ? ([card.sampleShape.at(-2)!, card.sampleShape.at(-1)!] as const) : undefined;
    if (shapes) this.#applyProbe(shapes, spatial);
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
    checkRunOptions(parallel, preconditioning);
    if (signal?.aborted) throw abortError(signal);
    const first = inputs.find(isTensor);
    const batch = first && first.shape.length > 0 ? first.shape[0]! : 1;
    const { entries, modules } = planForward(hooks, this.#sites, this.#moduleSites, batch, this.attentionReport);
    const parts = parallel === 'auto' ? autoChunks(batch, this.splitThreads) : parallel;
    const chunks = this.device === 'cpu' && first ? chunkBatch(batch, parts, modules) : [{ start: 0, end: batch }];
    const plan: NativePlan = { batch, entries, modules, preconditioning };
    const call = (m: string, i: readonly ForwardInput[], p: NativePlan, s: AbortSignal | undefined) =>
      this.#native.call(m, i as unknown[], p, s) as Promise<NativeHookResult>;
    this.#pending++;
    try {
      const result =
        chunks.length === 1
          ? await call(method, inputs, plan, signal)
          : await runChunks(call, method, inputs, chunks, { ...plan, intraOpThreads: chunkIntraOpThreads(chunks.length, torchThreads()) }, signal);
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

  /**
   * The torch threads a CPU forward of this model splits its batch over with
   * `parallel: 'auto'`: loadModel's `threads`, at most what the split may use
   * process-wide now (the torch job threads, fewer under a pinned BLAS
   * count). Not used on CUDA.
   */
  get splitThreads(): number {
    const available = autoSplitThreads();
    return this.#threads === undefined ? available : Math.min(this.#threads, available);
  }

  /** Forwards completed on this model (every method), for tests and plans. */
  get forwardCount(): number {
    return this.#native.forwardCount;
  }

  /**
   * The intra-op (OpenMP) threads this model's last forward ran with on its
   * torch thread: the process-wide count, or its share for each chunk when
   * run() split the batch into chunks that run at once. 0 before the first.
   */
  get lastForwardThreads(): number {
    return this.#native.lastForwardThreads;
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
 * Loads a TorchScript archive: torch::jit::load, eval, move to the device and
 * dtype, freeze. Reads the archive's model.json (the model card) when present.
 */
export function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  return Model.load(path, options);
}
