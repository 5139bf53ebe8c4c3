/**
 * createSamplingQueue()'s implementation (loaded on first use, with BullMQ):
 * the coordinator as an object for Node services that schedule sampling.
 * Each run() or submit() call opens its own connections and closes them when
 * it settles; dispose() stops the calls still waiting (their jobs stay in the
 * queue, and the workers go on).
 */
import { UsageError } from '../core/usage-error.js';
import { readFlags } from '../runs/run-flags.js';
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { parseOptions } from '../core/options.js';
import { checkReachable } from './connection.js';
import { type QueuedRunEvent, type QueuedRunResult, coordinateRun } from './coordinator.js';
import { type SamplingQueueOptions, samplingQueueOptionsSchema } from './queue-options.js';
import { type SamplingRunOptions, samplingRunArgv } from './run-spec.js';

/** Options of one run() or submit() call. */
export interface RunCallOptions {
  /** Stops waiting (run) or planning; the call rejects with the signal's reason, and the jobs already added stay. */
  signal?: AbortSignal;
  /** What the coordinator sees: the plan, each shard done or failed, refusals, periodic progress. */
  onEvent?: (event: QueuedRunEvent) => void;
}

/** Flag and settings problems reach API callers as ERR_INVALID_OPTION, not as the CLI's usage errors. */
async function asOptionError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof UsageError || String((error as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `invalid sampling run: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  }
}

/** A sampling queue on a Redis: plan runs on it and follow them. */
export class SamplingQueue implements AsyncDisposable {
  readonly url: string;
  readonly name: string;
  readonly #options: ReturnType<typeof samplingQueueOptionsSchema.parse>;
  readonly #calls = new Set<{ controller: AbortController; done: Promise<unknown> }>();
  #disposed = false;

  /** @internal use createSamplingQueue() */
  constructor(options: ReturnType<typeof samplingQueueOptionsSchema.parse>) {
    this.#options = options;
    this.url = options.url;
    this.name = options.name;
  }

  async #call(run: SamplingRunOptions, call: RunCallOptions, wait: boolean): Promise<QueuedRunResult> {
    if (this.#disposed) throw new TorchGuidanceError(ErrorCodes.DISPOSED, 'the sampling queue was disposed');
    const argv = samplingRunArgv(run);
    const controller = new AbortController();
    const signal = call.signal ? AbortSignal.any([call.signal, controller.signal]) : controller.signal;
    const work = asOptionError(async () =>
      coordinateRun(await readFlags(argv), {
        url: this.url,
        name: this.name,
        signal,
        wait,
        pollMs: this.#options.pollMs,
        connectTimeoutMs: this.#options.connectTimeoutMs,
        attempts: this.#options.attempts,
        backoffMs: this.#options.backoffMs,
        ...(call.onEvent ? { onEvent: call.onEvent } : {}),
      }),
    );
    const entry = { controller, done: work.catch(() => undefined) };
    this.#calls.add(entry);
    try {
      return await work;
    } finally {
      this.#calls.delete(entry);
    }
  }

  /**
   * Plans the run (the same checks and manifest as `torch-guidance sample`),
   * adds a job per shard not yet in storage, follows the workers to the end
   * and merges samples.npz. Resolves when the run is complete; rejects with
   * ERR_SHARDS_FAILED when shards failed on every attempt (calling again
   * retries them), ERR_INVALID_OPTION for a bad run, or the signal's reason.
   */
  run(run: SamplingRunOptions, call: RunCallOptions = {}): Promise<QueuedRunResult> {
    return this.#call(run, call, true);
  }

  /** Plans the run and adds its missing jobs, without waiting for the workers (run() later follows and merges it). */
  submit(run: SamplingRunOptions, call: RunCallOptions = {}): Promise<QueuedRunResult> {
    return this.#call(run, call, false);
  }

  /** Stops the calls in progress (they reject with ERR_ABORTED) and waits until they have released everything. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    const calls = [...this.#calls];
    for (const call of calls) call.controller.abort(new TorchGuidanceError(ErrorCodes.ABORTED, 'the sampling queue was disposed'));
    await Promise.all(calls.map((c) => c.done));
  }

  /** Disposes the queue (`await using`): as dispose(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** createSamplingQueue(): checks the options and that Redis answers. */
export async function openSamplingQueue(options: SamplingQueueOptions): Promise<SamplingQueue> {
  const parsed = parseOptions(samplingQueueOptionsSchema, options, 'sampling queue options');
  await checkReachable(parsed.url, { timeoutMs: parsed.connectTimeoutMs, ...(parsed.signal ? { signal: parsed.signal } : {}) });
  return new SamplingQueue(parsed);
}
