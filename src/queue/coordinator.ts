/**
 * The coordinator of a queued run (`torch-guidance sample --queue`, and
 * createSamplingQueue().run()). It plans the run as the local command does
 * (checks every flag against the models, writes or checks the manifest under
 * the folder's lock), adds one job per shard not yet complete in storage,
 * follows the run through BullMQ's events and a periodic poll, and, when every
 * shard is in, merges samples.npz and marks the manifest complete.
 *
 * Job ids are the run key and the shard index, so planning the same run
 * again (a restarted coordinator) adds only what is missing: jobs waiting,
 * running or delayed are left alone, failed ones are retried, and a shard
 * complete in storage gets no job. Killing the coordinator does not stop the
 * workers; rerunning it picks up wherever they are.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

import type { Flags } from '../runs/run-flags.js';
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { shardRange, writeManifest } from '../io/shards.js';
import { closeWithin } from './close.js';
import { checkReachable, connectionOptions, redactedUrl } from './connection.js';
import { planRun } from './plan-run.js';
import { type Refusal, Refusals } from './refusals.js';
import { type RunEvent, RunEvents } from './run-events.js';
import { RunJobs } from './run-jobs.js';
import { type RunProgress, RunTracker } from './run-tracker.js';
import { shardResultSchema } from './shard-job.js';

export interface CoordinatorOptions {
  /** The queue's Redis, redis://HOST:PORT/DB. */
  url: string;
  /** The queue's name. */
  name: string;
  /** Stops waiting (the workers go on); the call rejects with the signal's reason. */
  signal: AbortSignal;
  /** Follow the run to its end and merge (true), or only plan it and add its jobs (false). */
  wait: boolean;
  /** How often the coordinator polls the run's jobs, refusals and workers (ms; events arrive in between). */
  pollMs?: number;
  /** How long to wait for Redis at start (ms). */
  connectTimeoutMs?: number;
  /** Attempts per shard before it counts as failed. */
  attempts?: number;
  /** First retry delay after a failed attempt (ms; doubles each time). */
  backoffMs?: number;
  onEvent?: (event: QueuedRunEvent) => void;
}

/** What the coordinator does, as it happens; each event carries the run's progress. */
export type QueuedRunEvent =
  | {
      type: 'planned';
      runKey: string;
      out: string;
      queue: string;
      device: string;
      shardSize: number;
      /** Jobs added now, jobs already in the queue, failed jobs retried. */
      added: number;
      queued: number;
      retried: number;
      grewFrom?: number;
      progress: RunProgress;
    }
  | { type: 'shard-done'; shard: number; first: number; count: number; worker?: string; progress: RunProgress }
  | { type: 'shard-failed'; shard: number; reason: string; progress: RunProgress }
  | { type: 'refused'; refusal: Refusal; progress: RunProgress }
  | { type: 'update'; progress: RunProgress }
  | { type: 'merging'; progress: RunProgress };

/** How a queued run ended (or, without waiting, how it was left). */
export interface QueuedRunResult {
  out: string;
  runKey: string;
  shards: number;
  count: number;
  /** Shards complete when the coordinator started. */
  kept: number;
  /** Jobs this call added (failed ones retried included). */
  added: number;
  /** Every shard is complete (always true after a wait). */
  complete: boolean;
  /** samples.npz was written now. */
  merged: boolean;
  /** Samples made while this call watched, and over how many seconds. */
  made: number;
  seconds: number;
}

/** `work`, or the signal's reason as soon as it fires (a call stuck on an absent Redis does not hold a stop up). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Plans the run, adds its missing jobs and, with `wait`, follows it to the merge. */
export async function coordinateRun(flags: Flags, options: CoordinatorOptions): Promise<QueuedRunResult> {
  const { signal } = options;
  const pollMs = options.pollMs ?? 2000;
  await checkReachable(options.url, { timeoutMs: options.connectTimeoutMs ?? 5000, signal });
  const planned = await planRun(flags, signal);
  const { descriptor, layout, storage } = planned;
  const { runKey } = descriptor;
  const connection = connectionOptions(options.url);
  const emit = (event: QueuedRunEvent) => options.onEvent?.(event);
  let queue: Queue | undefined;
  let events: RunEvents | undefined;
  let redis: Redis | undefined;
  try {
    queue = new Queue(options.name, { connection });
    queue.on('error', () => undefined); // connection trouble shows as a run that stops moving; ioredis reconnects
    redis = new Redis(connection);
    redis.on('error', () => undefined);
    const refusals = new Refusals(redis, options.name);
    const jobs = new RunJobs(queue, descriptor, layout.plan, { attempts: options.attempts ?? 3, backoffMs: options.backoffMs ?? 10_000 });
    // Listening before the scan, so no event between the two is lost (the poll would catch it anyway).
    if (options.wait) events = await RunEvents.open(options.name, connection, runKey);

    // Jobs first, storage second (see RunJobs.ensure): a shard gets a new job only when it truly has none.
    const everyShard = Array.from({ length: layout.plan.shards }, (_, i) => i);
    const states = await jobs.states(everyShard);
    const complete: number[] = [];
    for (const i of everyShard) {
      if ((await storage.shardState(layout, i)).status === 'complete') complete.push(i);
    }
    const tracker = new RunTracker(layout.plan, complete);
    const remaining = tracker.remaining();
    const counts = await jobs.ensure(remaining, remaining.map((i) => states[i]!));
    emit({
      type: 'planned',
      runKey,
      out: storage.location,
      queue: `${redactedUrl(options.url)} (${options.name})`,
      device: descriptor.device,
      shardSize: layout.plan.shardSize,
      ...counts,
      ...(planned.grewFrom === undefined ? {} : { grewFrom: planned.grewFrom }),
      progress: tracker.snapshot(),
    });
    const result = (merged: boolean): QueuedRunResult => {
      const progress = tracker.snapshot();
      return {
        out: storage.location,
        runKey,
        shards: layout.plan.shards,
        count: layout.plan.count,
        kept: complete.length,
        added: counts.added + counts.retried,
        complete: tracker.complete,
        merged,
        made: progress.made,
        seconds: progress.elapsedSeconds,
      };
    };
    if (!events) return result(false);

    /** A job ended: the shard counts once it is complete in storage; otherwise it needs a job again. */
    const markDone = async (i: number, worker?: string) => {
      if (tracker.isDone(i)) return;
      if ((await storage.shardState(layout, i)).status !== 'complete') {
        await jobs.ensure([i], await jobs.states([i]));
        return;
      }
      tracker.done(i);
      const { first, n } = shardRange(layout.plan, i);
      emit({ type: 'shard-done', shard: i, first, count: n, ...(worker ? { worker } : {}), progress: tracker.snapshot() });
    };
    const markFailed = async (i: number) => {
      const reason = await jobs.failure(i);
      if (reason === undefined || tracker.isFailed(i)) return;
      tracker.failed(i, reason);
      emit({ type: 'shard-failed', shard: i, reason, progress: tracker.snapshot() });
    };
    /** Events seen per shard: a poll's answer older than a shard's latest event does not override it. */
    const seen = new Map<number, number>();
    const handle = async ({ kind, shard: i, payload }: RunEvent) => {
      seen.set(i, (seen.get(i) ?? 0) + 1);
      switch (kind) {
        case 'active':
          tracker.running(i);
          break;
        case 'progress': {
          const made = (payload.data as { made?: unknown } | undefined)?.made;
          if (typeof made === 'number') tracker.progress(i, made);
          break;
        }
        case 'completed': {
          const parsed = shardResultSchema.safeParse(payload.returnvalue);
          await markDone(i, parsed.success ? parsed.data.worker : undefined);
          break;
        }
        case 'failed':
          tracker.waiting(i);
          await markFailed(i);
          break;
        default: // waiting (handed back, refused, retried), delayed (backoff), stalled (its worker died)
          tracker.waiting(i);
      }
    };
    const shown = new Set<string>();
    const poll = async () => {
      const left = tracker.remaining();
      const before = new Map(seen);
      for (const [k, state] of (await jobs.states(left)).entries()) {
        const i = left[k]!;
        if (state === 'unknown' || state === 'completed') await markDone(i);
        else if (state === 'failed') await markFailed(i);
        else if (seen.get(i) !== before.get(i)) continue;
        else if (state === 'active') tracker.running(i);
        else tracker.waiting(i);
      }
      tracker.workers = await queue!.getWorkersCount().catch(() => tracker.workers);
      tracker.refusals = await refusals.read(runKey).catch(() => tracker.refusals);
      for (const refusal of tracker.refusals) {
        const key = `${refusal.worker}\0${refusal.code}\0${refusal.message}`;
        if (shown.has(key)) continue;
        shown.add(key);
        emit({ type: 'refused', refusal, progress: tracker.snapshot() });
      }
      emit({ type: 'update', progress: tracker.snapshot() });
    };

    let nextPoll = 0;
    while (!tracker.complete) {
      if (signal.aborted) throw signal.reason;
      for (let event = events.take(); event; event = events.take()) await untilAborted(handle(event), signal);
      if (performance.now() >= nextPoll) {
        await untilAborted(poll(), signal);
        // A poll asks for every remaining shard's state: spaced out by 1 ms per shard, so a run of
        // many shards keeps Redis below about a thousand such calls per second (events come in between).
        nextPoll = performance.now() + pollMs + tracker.remaining().length;
      }
      if (tracker.complete) break;
      if (tracker.stuck) {
        const { failures } = tracker.snapshot();
        throw new TorchGuidanceError(
          ErrorCodes.SHARDS_FAILED,
          `${failures.length} shard(s) of ${flags.out} failed on every attempt:\n` +
            failures.map((f) => `  shard ${f.shard + 1}: ${f.reason}`).join('\n') +
            "\nFix the cause (the workers' logs say more) and rerun the same command: it retries them.",
        );
      }
      await events.wait(nextPoll - performance.now(), signal);
    }

    // Every shard is in, so what temporaries are left belong to dead or late writers.
    await storage.removeTemporaries();
    let merged = false;
    if (layout.format !== 'png' && (tracker.snapshot().made > 0 || (await storage.mergedProblem(layout)) !== undefined)) {
      emit({ type: 'merging', progress: tracker.snapshot() });
      await storage.merge(layout);
      merged = true;
    }
    if (!planned.manifest.completedAt) {
      planned.manifest.completedAt = new Date().toISOString();
      await writeManifest(flags.out, planned.manifest);
    }
    return result(merged);
  } finally {
    await Promise.all([closeWithin(events?.connection), closeWithin(queue), closeWithin(redis)]);
    await planned.release();
  }
}
