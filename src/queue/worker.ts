/**
 * A process's share of queued sampling runs (runWorker() in src/queue/index.ts). A BullMQ worker
 * takes shard jobs (up to `concurrency` at once), samples each with the
 * run's models (loaded once per run, src/queue/loaded-runs.ts) and stores it
 * (src/queue/process-shard.ts).
 *
 * Failure handling, in BullMQ's terms:
 * - heartbeats: BullMQ renews each job's lock every lockDuration / 2 while
 *   the shard is sampled (sampling runs on torch threads, so the event loop
 *   stays free to do it). A worker that dies (SIGKILL, a lost machine) stops
 *   renewing; another worker's stalled check moves the job back to the queue
 *   once the lock has expired, and the shard is sampled again from its start;
 * - stop (SIGTERM, stop(), the signal): no new jobs; shards in progress get
 *   `graceMs` to finish, then are handed back (moved to the queue's wait
 *   list at once, without waiting for the stalled check);
 * - refusal: a worker that may not sample a run (another model file, a
 *   folder it cannot see, other torch threads) records why for the
 *   coordinator to show, puts the job back, and takes no job for a while
 *   (refusalBackoffMs), so that workers that can take the run get it;
 * - failure: an error while sampling or writing fails the attempt; BullMQ
 *   retries it with a backoff, up to the attempts the coordinator set.
 * A shard sampled twice (a stalled job whose worker was alive after all)
 * gives the same bytes twice, written atomically, and the coordinator counts
 * shards by index, from storage, so nothing is counted twice.
 */
import { hostname } from 'node:os';

import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';

import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import { runtimeInfo } from '../core/runtime.js';
import type { DeviceName } from '../core/tensor.js';
import { parseOptions } from '../core/options.js';
import { closeWithin } from './close.js';
import { checkReachable, connectionOptions } from './connection.js';
import { LoadedRuns } from './loaded-runs.js';
import { RunRefusal, processShard } from './process-shard.js';
import { Refusals } from './refusals.js';
import { type ShardJobData, type ShardResult, parseShardJob } from './shard-job.js';
import { type SamplingWorkerOptions, type ShardRef, type WorkerEvent, type WorkerSummary, samplingWorkerOptionsSchema } from './worker-options.js';

let workersInProcess = 0;

function shardRef(job: Job, data: ShardJobData): ShardRef {
  return { runKey: data.runKey, location: data.location, shard: data.shard.index, of: data.shard.of, jobId: job.id ?? '?' };
}

/** A running worker (made by runWorker()); stop() or dispose it (the signal stops it too). */
export class SamplingWorker implements AsyncDisposable {
  /** The worker's name in jobs, logs and refusals. */
  readonly id: string;
  /** Settles when the worker has stopped, with what it did. */
  readonly closed: Promise<WorkerSummary>;
  readonly #worker: Worker;
  readonly #redis: Redis;
  readonly #runs: LoadedRuns;
  readonly #stopController: AbortController;
  readonly #active = new Map<string, AbortController>();
  readonly #graceMs: number;
  readonly #summary: WorkerSummary;
  readonly #emit: (event: WorkerEvent) => void;
  readonly #refusals: Refusals;
  readonly #refusalBackoffMs: number;
  #resolveClosed!: (summary: WorkerSummary) => void;
  #stopping: Promise<WorkerSummary> | undefined;
  #resumeTimer: NodeJS.Timeout | undefined;

  /** @internal use runWorker() */
  constructor(parts: {
    id: string;
    worker: Worker;
    redis: Redis;
    runs: LoadedRuns;
    stopController: AbortController;
    graceMs: number;
    refusalBackoffMs: number;
    emit: (event: WorkerEvent) => void;
  }) {
    this.id = parts.id;
    this.#worker = parts.worker;
    this.#redis = parts.redis;
    this.#runs = parts.runs;
    this.#stopController = parts.stopController;
    this.#graceMs = parts.graceMs;
    this.#emit = parts.emit;
    this.#refusals = new Refusals(parts.redis, parts.worker.name);
    this.#refusalBackoffMs = parts.refusalBackoffMs;
    this.#summary = { worker: parts.id, written: 0, present: 0, obsolete: 0, refused: 0, handedBack: 0, failed: 0 };
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Counts so far. */
  get summary(): WorkerSummary {
    return { ...this.#summary };
  }

  /** @internal the BullMQ processor */
  async process(job: Job, token: string | undefined): Promise<ShardResult> {
    let data: ShardJobData;
    try {
      data = parseShardJob(job.data, job.id);
    } catch (error) {
      this.#summary.failed++;
      this.#emit({ type: 'failed', jobId: job.id ?? '?', message: (error as Error).message });
      throw new UnrecoverableError(`${ErrorCodes.INVALID_JOB}: ${(error as Error).message}`);
    }
    const ref = shardRef(job, data);
    const controller = new AbortController();
    this.#active.set(ref.jobId, controller);
    let lastProgress = 0;
    let progress: Promise<unknown> = Promise.resolve();
    try {
      const result = await processShard(data, {
        runs: this.#runs,
        workerId: this.id,
        signal: controller.signal,
        onStarted: (loadedNow) => {
          this.#emit({ type: 'started', ...ref, loadedNow, first: data.shard.first, count: data.shard.count });
          // This worker takes the run now: a refusal it recorded earlier no longer holds.
          if (loadedNow) this.#refusals.clear(data.runKey, this.id).catch(() => undefined);
        },
        onProgress: (made) => {
          const now = performance.now();
          if (now - lastProgress < 500) return;
          lastProgress = now;
          progress = job.updateProgress({ made }).catch(() => undefined);
        },
      });
      await progress;
      this.#summary[result.status === 'written' ? 'written' : result.status === 'present' ? 'present' : 'obsolete']++;
      this.#emit({ type: 'done', ...ref, result });
      return result;
    } catch (error) {
      await progress;
      if (error instanceof RunRefusal) {
        this.#summary.refused++;
        const { code, message } = error.reason;
        this.#emit({ type: 'refused', ...ref, code, message });
        await this.#refusals.record(data.runKey, { worker: this.id, code, message, at: new Date().toISOString() }).catch(() => undefined);
        // Paused before the job goes back, so that this worker does not take it again at once.
        this.#backOff();
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (controller.signal.aborted) {
        await job.moveToWait(token);
        this.#summary.handedBack++;
        this.#emit({ type: 'handed-back', ...ref });
        throw new WaitingError();
      }
      this.#summary.failed++;
      const message = isTorchGuidanceError(error) ? `${error.code}: ${error.message}` : String((error as Error)?.message ?? error);
      this.#emit({ type: 'failed', ...ref, message });
      if (isTorchGuidanceError(error, ErrorCodes.INVALID_JOB)) throw new UnrecoverableError(message);
      throw new Error(message, { cause: error });
    } finally {
      this.#active.delete(ref.jobId);
    }
  }

  /** Takes no job for the refusal backoff, unless stopping. */
  #backOff(): void {
    if (this.#refusalBackoffMs === 0 || this.#stopping || this.#resumeTimer) return;
    void this.#worker.pause(true).catch(() => undefined);
    this.#resumeTimer = setTimeout(() => {
      this.#resumeTimer = undefined;
      if (!this.#stopping) void this.#worker.resume().catch(() => undefined);
    }, this.#refusalBackoffMs);
  }

  /** Hands every shard in progress back to the queue (their sampling stops after the current step). */
  #handBack(): void {
    for (const controller of this.#active.values()) controller.abort(new TorchGuidanceError(ErrorCodes.ABORTED, 'handed back: the worker is stopping'));
  }

  /**
   * Stops taking jobs; shards in progress get `graceMs` (default: the
   * worker's) to finish and are then handed back to the queue. Resolves when
   * the worker's connections are closed and its models disposed. Called again
   * while stopping, with graceMs 0, it hands the shards back at once.
   */
  stop(options: { graceMs?: number } = {}): Promise<WorkerSummary> {
    const graceMs = options.graceMs ?? this.#graceMs;
    if (this.#stopping) {
      if (graceMs === 0) this.#handBack();
      return this.#stopping;
    }
    this.#stopping = (async () => {
      this.#emit({ type: 'stopping', graceMs, active: this.#active.size });
      clearTimeout(this.#resumeTimer);
      this.#resumeTimer = undefined;
      const timer = setTimeout(() => this.#handBack(), graceMs);
      try {
        if (graceMs === 0) this.#handBack();
        // Handing back needs Redis; if it is gone, the shards' locks expire and other workers take them,
        // so after the grace and a margin the worker drops its connections instead of waiting for Redis.
        const patience = (this.#active.size > 0 ? graceMs : 0) + 10_000;
        await closeWithin({ close: () => this.#worker.close(), disconnect: () => this.#worker.disconnect() }, patience);
      } finally {
        clearTimeout(timer);
        this.#stopController.abort(new TorchGuidanceError(ErrorCodes.ABORTED, 'the worker stopped'));
        this.#runs.dispose();
        await closeWithin(this.#redis);
        this.#resolveClosed(this.summary);
      }
      return this.summary;
    })();
    return this.#stopping;
  }

  /** Stops at once: shards in progress are handed back. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop({ graceMs: 0 });
  }
}

/**
 * runWorker()'s implementation (loaded on first use, with BullMQ). Starts a worker on a sampling queue: it takes shard jobs until stopped.
 * Rejects with ERR_QUEUE_UNREACHABLE when Redis does not answer within
 * connectTimeoutMs, ERR_CUDA_UNAVAILABLE for a CUDA device this process
 * cannot see, and ERR_INVALID_OPTION for bad options.
 */
export async function startWorker(options: SamplingWorkerOptions): Promise<SamplingWorker> {
  const o = parseOptions(samplingWorkerOptionsSchema, options, 'worker options');
  if (o.device.startsWith('cuda') && !runtimeInfo().cudaAvailable) {
    throw new TorchGuidanceError(ErrorCodes.CUDA_UNAVAILABLE, `worker device '${o.device}': CUDA is not available in this process; give device cpu or run the worker on a machine with a GPU.`);
  }
  await checkReachable(o.url, { timeoutMs: o.connectTimeoutMs, signal: o.signal });
  o.signal?.throwIfAborted();
  workersInProcess++;
  const id = o.id ?? `${hostname()}:${process.pid}${workersInProcess > 1 ? `/${workersInProcess}` : ''}`;
  const emit = (event: WorkerEvent) => {
    try {
      o.onEvent?.(event);
    } catch {
      // A logger's failure must not fail a shard.
    }
  };
  const stopController = new AbortController();
  const runs = new LoadedRuns({ device: o.device as DeviceName, models: o.models, recheckRefusedMs: o.refusalBackoffMs * 6, signal: stopController.signal });
  const redis = new Redis(connectionOptions(o.url));
  redis.on('error', (error: Error) => emit({ type: 'error', message: `Redis: ${error.message}` }));
  let instance: SamplingWorker | undefined;
  const worker = new Worker(o.name, (job, token) => instance!.process(job, token), {
    connection: connectionOptions(o.url),
    name: id,
    concurrency: o.concurrency,
    lockDuration: o.lockDurationMs,
    stalledInterval: o.stalledIntervalMs,
    // A shard may meet a dying worker twice before it counts as failed.
    maxStalledCount: 2,
    autorun: false,
  });
  worker.on('error', (error: Error) => emit({ type: 'error', message: error.message }));
  instance = new SamplingWorker({ id, worker, redis, runs, stopController, graceMs: o.graceMs, refusalBackoffMs: o.refusalBackoffMs, emit });
  const onAbort = () => void instance.stop();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  void instance.closed.then(() => o.signal?.removeEventListener('abort', onAbort));
  void worker.run().catch((error: Error) => emit({ type: 'error', message: error.message }));
  await worker.waitUntilReady();
  emit({ type: 'ready', worker: id, queue: o.name, concurrency: o.concurrency, device: o.device });
  return instance;
}
