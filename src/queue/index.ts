/**
 * Sampling runs spread over many machines on a Redis queue (BullMQ): a
 * coordinator plans a run and adds one job per shard, workers anywhere sample
 * the shards into the run's folder, and the files equal a run on one machine
 * byte for byte. docs/distributed.md describes a cluster.
 *
 * BullMQ loads on the first call of createSamplingQueue() or runWorker(), so
 * importing the package costs nothing for those who never use a queue.
 */
import type { SamplingQueue } from './sampling-queue.js';
import type { SamplingQueueOptions } from './queue-options.js';
import type { SamplingWorker } from './worker.js';
import type { SamplingWorkerOptions } from './worker-options.js';

export { DEFAULT_QUEUE_NAME } from '../runs/queue-address.js';
export type { QueuedRunEvent, QueuedRunResult } from './coordinator.js';
export { samplingQueueOptionsSchema, type SamplingQueueOptions } from './queue-options.js';
export type { Refusal } from './refusals.js';
export type { RunProgress } from './run-tracker.js';
export { samplingRunSchema, type SamplingRunOptions } from './run-spec.js';
export type { RunCallOptions, SamplingQueue } from './sampling-queue.js';
export type { RunStorage, ShardData, ShardLayout } from './storage.js';
export type { SamplingWorker } from './worker.js';
export {
  samplingWorkerOptionsSchema,
  type SamplingWorkerOptions,
  type ShardRef,
  type WorkerEvent,
  type WorkerSummary,
} from './worker-options.js';

/**
 * Opens a sampling queue for planning and following runs (the coordinator
 * of `torch-guidance sample --queue`). Rejects with ERR_INVALID_OPTION for
 * bad options and ERR_QUEUE_UNREACHABLE when Redis does not answer.
 *
 * ```ts
 * await using queue = await createSamplingQueue({ url: 'redis://127.0.0.1:6379/0' });
 * const result = await queue.run({ model: 'models/fashion-unet.pt', guidance: ['cfg:3'], count: 50_000,
 *   format: 'npz', out: '/shared/runs/cfg3' }, { signal, onEvent: (e) => console.log(e.type, e.progress.done) });
 * ```
 */
export async function createSamplingQueue(options: SamplingQueueOptions): Promise<SamplingQueue> {
  const { openSamplingQueue } = await import('./sampling-queue.js');
  return openSamplingQueue(options);
}

/**
 * Starts a worker that samples shards of queued runs until stopped (stop(),
 * dispose, or its signal). Rejects with ERR_INVALID_OPTION for bad options,
 * ERR_QUEUE_UNREACHABLE when Redis does not answer, ERR_CUDA_UNAVAILABLE for
 * a CUDA device this process cannot see.
 *
 * ```ts
 * const worker = await runWorker({ url: 'redis://10.0.0.5:6379/0', device: 'cuda:0', signal });
 * const summary = await worker.closed; // { written, refused, handedBack, ... }
 * ```
 */
export async function runWorker(options: SamplingWorkerOptions): Promise<SamplingWorker> {
  const { startWorker } = await import('./worker.js');
  return startWorker(options);
}
