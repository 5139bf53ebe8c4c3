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
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

import { deviceSettings, loadRun, openOutput } from '../cli/sample.js';
import type { Flags } from '../cli/sample-flags.js';
import { ErrorCodes, TorchGuidanceError } from '../errors.js';
import { PNG_DIR, shardPlan, shardRange, writeManifest } from '../io/shards.js';
import type { Model } from '../model.js';
import { runtimeInfo } from '../runtime.js';
import { closeWithin } from './close.js';
import { checkReachable, connectionOptions, redactedUrl } from './connection.js';
import { deviceKind } from './loaded-runs.js';
import { type Refusal, Refusals } from './refusals.js';
import { type RunProgress, RunTracker } from './run-tracker.js';
import { portableArgv, runModels } from './run-spec.js';
import {
  type RunDescriptor,
  SHARD_JOB,
  type ShardJobData,
  parseShardJobId,
  runKeyOf,
  settingsFingerprint,
  shardJobId,
  shardResultSchema,
} from './shard-job.js';
import { FileRunStorage, type ShardLayout } from './storage.js';

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

  // The workers' device kind; the models load on this machine's CPU only to check the flags against them.
  const kind = flags.device === 'auto' ? (runtimeInfo().cudaAvailable ? 'cuda' : 'cpu') : deviceKind(flags.device);
  const models: Model[] = [];
  let plan;
  try {
    const run = await loadRun({ ...flags, device: 'cpu' }, signal, models);
    plan = { settings: { ...run.settings, ...deviceSettings(kind, flags.parallel) }, geometry: run.geometry, withLabels: run.withLabels };
  } finally {
    for (const model of models) model.dispose();
  }
  // The manifest keeps the command line for diagnosis; a password in the queue's URL stays out of it.
  const argv = flags.argv.map((arg) => arg.replace(/^((?:--queue=)?rediss?:\/\/)[^@/]*@/, (_, scheme: string) => `${scheme}***@`));
  const opened = await openOutput({ ...flags, argv }, plan.settings);
  const connection = connectionOptions(options.url);
  let queue: Queue | undefined;
  let events: QueueEvents | undefined;
  let redis: Redis | undefined;
  try {
    if (flags.format !== 'npz') await mkdir(join(flags.out, PNG_DIR), { recursive: true });
    const storage = new FileRunStorage(flags.out);
    const layout: ShardLayout = { plan: shardPlan(flags.count, flags.shardSize), format: flags.format, geometry: plan.geometry, withLabels: plan.withLabels };
    const fingerprint = settingsFingerprint(opened.manifest.settings);
    const runKey = runKeyOf(fingerprint, storage.location);
    const descriptor: RunDescriptor = {
      version: 1,
      runKey,
      fingerprint,
      location: storage.location,
      argv: portableArgv(flags),
      models: runModels(flags),
      device: kind as RunDescriptor['device'],
    };

    queue = new Queue(options.name, { connection });
    queue.on('error', () => undefined); // connection trouble shows as stalled progress; ioredis reconnects
    redis = new Redis(connection);
    redis.on('error', () => undefined);
    const refusals = new Refusals(redis, options.name);
    const inbox: { kind: string; jobId: string; payload: Record<string, unknown> }[] = [];
    let wake: (() => void) | undefined;
    if (options.wait) {
      // Listening before the scan, so no event between the two is lost (the poll would catch it anyway).
      events = new QueueEvents(options.name, { connection });
      events.on('error', () => undefined);
      for (const kind of ['active', 'progress', 'completed', 'failed', 'waiting', 'delayed', 'stalled'] as const) {
        events.on(kind, (payload: { jobId: string }) => {
          if (parseShardJobId(payload.jobId)?.runKey !== runKey) return;
          inbox.push({ kind, jobId: payload.jobId, payload: payload as unknown as Record<string, unknown> });
          wake?.();
        });
      }
      await events.waitUntilReady();
    }

    const jobStates = (shards: number[]) => Promise.all(shards.map((i) => queue!.getJobState(shardJobId(runKey, i))));
    // Jobs first, storage second: a job gone from the queue (removed when it completed) had its files
    // stored before, so the scan sees them, and a shard gets a new job only when it truly has none.
    const everyShard = Array.from({ length: layout.plan.shards }, (_, i) => i);
    const states = await jobStates(everyShard);
    const complete: number[] = [];
    for (const i of everyShard) {
      if ((await storage.shardState(layout, i)).status === 'complete') complete.push(i);
    }
    const tracker = new RunTracker(layout.plan, complete);
    const jobOptions = (i: number) => ({
      jobId: shardJobId(runKey, i),
      attempts: options.attempts ?? 3,
      backoff: { type: 'exponential', delay: options.backoffMs ?? 10_000 },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600 },
    });
    const jobData = (i: number): ShardJobData => {
      const { first, n } = shardRange(layout.plan, i);
      return { ...descriptor, shard: { index: i, first, count: n, of: layout.plan.shards } };
    };

    /** Adds the jobs of incomplete shards that have none (by their job states, read before storage), retries failed ones. */
    const ensureJobs = async (shards: number[], states: Awaited<ReturnType<typeof jobStates>>) => {
      const add: number[] = [];
      let queued = 0;
      let retried = 0;
      for (const [k, state] of states.entries()) {
        const i = shards[k]!;
        if (state === 'unknown') add.push(i);
        else if (state === 'completed') {
          // Completed (kept by someone's queue settings) yet not in storage: sample it again.
          await queue!.remove(shardJobId(runKey, i));
          add.push(i);
        } else if (state === 'failed') {
          await (await queue!.getJob(shardJobId(runKey, i)))?.retry('failed');
          tracker.waiting(i);
          retried++;
        } else queued++;
      }
      if (add.length > 0) await queue!.addBulk(add.map((i) => ({ name: SHARD_JOB, data: jobData(i), opts: jobOptions(i) })));
      return { added: add.length, queued, retried };
    };

    const remaining = tracker.remaining();
    const counts = await ensureJobs(remaining, remaining.map((i) => states[i]!));
    const emit = (event: QueuedRunEvent) => options.onEvent?.(event);
    emit({
      type: 'planned',
      runKey,
      out: storage.location,
      queue: `${redactedUrl(options.url)} (${options.name})`,
      device: kind,
      shardSize: flags.shardSize,
      ...counts,
      ...(opened.grewFrom === undefined ? {} : { grewFrom: opened.grewFrom }),
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
    if (!options.wait) return result(false);

    const markDone = async (i: number, worker?: string) => {
      if (tracker.isDone(i)) return;
      if ((await storage.shardState(layout, i)).status !== 'complete') {
        // The job ended without the shard in storage (its run changed, or the files were removed): again.
        await ensureJobs([i], await jobStates([i]));
        return;
      }
      tracker.done(i);
      const { first, n } = shardRange(layout.plan, i);
      emit({ type: 'shard-done', shard: i, first, count: n, ...(worker ? { worker } : {}), progress: tracker.snapshot() });
    };
    const markFailed = async (i: number) => {
      const job = await queue!.getJob(shardJobId(runKey, i));
      if (!job || (await job.getState()) !== 'failed' || tracker.isFailed(i)) return;
      tracker.failed(i, job.failedReason || 'failed');
      emit({ type: 'shard-failed', shard: i, reason: job.failedReason || 'failed', progress: tracker.snapshot() });
    };
    /** Events seen per shard: a poll's answer older than a shard's latest event does not override it. */
    const seen = new Map<number, number>();
    const handle = async (event: (typeof inbox)[number]) => {
      const i = parseShardJobId(event.jobId)!.index;
      seen.set(i, (seen.get(i) ?? 0) + 1);
      switch (event.kind) {
        case 'active':
          tracker.running(i);
          break;
        case 'progress': {
          const made = (event.payload.data as { made?: unknown } | undefined)?.made;
          if (typeof made === 'number') tracker.progress(i, made);
          break;
        }
        case 'completed': {
          const parsed = shardResultSchema.safeParse(event.payload.returnvalue);
          await markDone(i, parsed.success ? parsed.data.worker : undefined);
          break;
        }
        case 'failed':
          tracker.waiting(i);
          await markFailed(i);
          break;
        default: // waiting (handed back, retried), delayed (refused, backoff), stalled (its worker died)
          tracker.waiting(i);
      }
    };
    const known = new Set<string>();
    const poll = async () => {
      const remaining = tracker.remaining();
      const before = new Map(seen);
      const states = await Promise.all(remaining.map((i) => queue!.getJobState(shardJobId(runKey, i))));
      for (const [k, state] of states.entries()) {
        const i = remaining[k]!;
        if (state === 'unknown' || state === 'completed') await markDone(i);
        else if (state === 'failed') await markFailed(i);
        else if (seen.get(i) !== before.get(i)) continue;
        else if (state === 'active') tracker.running(i);
        else tracker.waiting(i);
      }
      tracker.workers = await queue!.getWorkersCount().catch(() => tracker.workers);
      const refused = await refusals.read(runKey).catch(() => tracker.refusals);
      tracker.refusals = refused;
      for (const refusal of refused) {
        const key = `${refusal.worker}\0${refusal.code}\0${refusal.message}`;
        if (!known.has(key)) {
          known.add(key);
          emit({ type: 'refused', refusal, progress: tracker.snapshot() });
        }
      }
      emit({ type: 'update', progress: tracker.snapshot() });
    };

    let nextPoll = 0;
    while (!tracker.complete) {
      if (signal.aborted) throw signal.reason ?? new TorchGuidanceError(ErrorCodes.ABORTED, 'aborted');
      while (inbox.length > 0) await untilAborted(handle(inbox.shift()!), signal);
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
            '\nFix the cause (the workers\' logs say more) and rerun the same command: it retries them.',
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(10, nextPoll - performance.now()));
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        }
        wake = done;
        signal.addEventListener('abort', done, { once: true });
        if (inbox.length > 0 || signal.aborted) done();
      });
    }

    // Every shard is in. No writer can still be at work on this run's files that matter, so temporaries go.
    await storage.removeTemporaries();
    let merged = false;
    if (flags.format !== 'png' && (tracker.snapshot().made > 0 || (await storage.mergedProblem(layout)) !== undefined)) {
      emit({ type: 'merging', progress: tracker.snapshot() });
      await storage.merge(layout);
      merged = true;
    }
    if (!opened.manifest.completedAt) {
      opened.manifest.completedAt = new Date().toISOString();
      await writeManifest(flags.out, opened.manifest);
    }
    return result(merged);
  } finally {
    await Promise.all([closeWithin(events), closeWithin(queue), closeWithin(redis)]);
    await opened.release();
  }
}
