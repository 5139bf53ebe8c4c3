/**
 * What a worker does with one shard job, apart from the queue: find the run's
 * manifest, check that the job still belongs to it, take the run's loaded
 * models (or the reason this worker may not use them), sample the shard with
 * the same code as `torch-guidance sample`, and store it atomically. A shard
 * already complete in storage is not sampled again.
 */
import { makeShard } from '../runs/shard-files.js';
import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import { shardRange } from '../io/shards.js';
import type { LoadedRuns } from './loaded-runs.js';
import { type ShardJobData, type ShardResult, settingsFingerprint } from './shard-job.js';
import { openRunStorage } from './storage.js';

/** This worker may not sample the run (`reason` says why); the job goes back to the queue for others. */
export class RunRefusal extends Error {
  readonly reason: TorchGuidanceError;

  constructor(reason: TorchGuidanceError) {
    super(reason.message);
    this.name = 'RunRefusal';
    this.reason = reason;
  }
}

export interface ShardContext {
  runs: LoadedRuns;
  workerId: string;
  /** Aborts the sampling (the shard is handed back). */
  signal: AbortSignal;
  /** The run is loaded (by this call when `loadedNow`) and the shard's sampling starts. */
  onStarted?: (loadedNow: boolean) => void;
  /** Images of the shard made so far (fractions of the batch in flight included). */
  onProgress?: (made: number) => void;
}

/** Samples and stores the shard of `job`; rejects with a RunRefusal when this worker may not, with ERR_INVALID_JOB when the shard does not fit its run. */
export async function processShard(job: ShardJobData, context: ShardContext): Promise<ShardResult> {
  const started = performance.now();
  const ms = (since: number) => performance.now() - since;
  const storage = openRunStorage(job.location);
  const manifest = await storage.readManifest().catch(() => undefined);
  if (!manifest) {
    throw new RunRefusal(
      new TorchGuidanceError(
        ErrorCodes.RUN_NOT_FOUND,
        `this worker sees no run at ${job.location} (no readable manifest.json): mount the run's folder at the same path on every worker.`,
      ),
    );
  }
  const result = (status: ShardResult['status'], times: Partial<ShardResult['ms']> = {}): ShardResult => ({
    status,
    worker: context.workerId,
    ms: { load: 0, sample: 0, write: 0, ...times, total: ms(started) },
  });
  // A run grown or restarted with other settings since this job was added: its shards are other jobs now.
  if (settingsFingerprint(manifest.settings) !== job.fingerprint) return result('obsolete');

  let lease;
  try {
    lease = await context.runs.acquire(job, manifest);
  } catch (error) {
    // Whatever keeps this worker from the run (its files, its settings, flags it does not know) is a
    // refusal: another worker may take the run. A stop is not a verdict on the run.
    if (isTorchGuidanceError(error) && error.code !== ErrorCodes.ABORTED && error.code !== ErrorCodes.DISPOSED) throw new RunRefusal(error);
    throw error;
  }
  try {
    const load = ms(started);
    const { loaded } = lease;
    const { plan } = loaded.layout;
    const { first, n } = shardRange(plan, job.shard.index);
    if (job.shard.index >= plan.shards || job.shard.first !== first || job.shard.count !== n || job.shard.of !== plan.shards) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_JOB,
        `shard ${job.shard.index} (samples ${job.shard.first}+${job.shard.count} of ${job.shard.of} shards) does not fit the run's layout ` +
          `(${plan.shards} shards of ${plan.shardSize}); the job was not made by this version's coordinator.`,
      );
    }
    if ((await loaded.storage.shardState(loaded.layout, job.shard.index)).status === 'complete') return result('present', { load });
    context.onStarted?.(lease.fresh);
    const sampling = performance.now();
    const shard = await makeShard(loaded.run, loaded.flags, job.shard.index, { signal: context.signal, onProgress: context.onProgress });
    const sample = ms(sampling);
    const writing = performance.now();
    await loaded.storage.writeShard(loaded.layout, job.shard.index, shard);
    return result('written', { load, sample, write: ms(writing) });
  } finally {
    lease.release();
  }
}
