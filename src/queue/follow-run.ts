/**
 * Following a queued run until every shard is in: BullMQ's events for the
 * run's jobs as they come, and a periodic poll of every remaining shard's
 * job, the refusals and the workers, since an event can be missed (a
 * coordinator that started late, a dropped connection). A shard counts as
 * done only once it is complete in storage; a job that ended without it gets
 * a new one.
 */
import type { Queue } from 'bullmq';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { shardRange } from '../io/shards.js';
import type { QueuedRunEvent } from './coordinator.js';
import type { PlannedRun } from './plan-run.js';
import type { Refusals } from './refusals.js';
import type { RunEvent, RunEvents } from './run-events.js';
import type { RunJobs } from './run-jobs.js';
import type { RunTracker } from './run-tracker.js';
import { shardResultSchema } from './shard-job.js';

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

/** What a follower works with: the planned run, its jobs and tracker, the queue's refusals, and where events go. */
export interface FollowerParts {
  planned: PlannedRun;
  jobs: RunJobs;
  tracker: RunTracker;
  refusals: Refusals;
  queue: Queue;
  emit: (event: QueuedRunEvent) => void;
}

/** Follows one queued run's shards to the end, updating its tracker and emitting what happens. */
export class RunFollower {
  readonly #parts: FollowerParts;
  /** Events seen per shard: a poll's answer older than a shard's latest event does not override it. */
  readonly #seen = new Map<number, number>();
  /** Refusals already emitted. */
  readonly #shown = new Set<string>();

  constructor(parts: FollowerParts) {
    this.#parts = parts;
  }

  /** A job ended: the shard counts once it is complete in storage; otherwise it needs a job again. */
  async #markDone(i: number, worker?: string): Promise<void> {
    const { planned, jobs, tracker, emit } = this.#parts;
    if (tracker.isDone(i)) return;
    if ((await planned.storage.shardState(planned.layout, i)).status !== 'complete') {
      await jobs.ensure([i], await jobs.states([i]));
      return;
    }
    tracker.done(i);
    const { first, n } = shardRange(planned.layout.plan, i);
    emit({ type: 'shard-done', shard: i, first, count: n, ...(worker ? { worker } : {}), progress: tracker.snapshot() });
  }

  async #markFailed(i: number): Promise<void> {
    const { jobs, tracker, emit } = this.#parts;
    const reason = await jobs.failure(i);
    if (reason === undefined || tracker.isFailed(i)) return;
    tracker.failed(i, reason);
    emit({ type: 'shard-failed', shard: i, reason, progress: tracker.snapshot() });
  }

  /** One BullMQ event of one of the run's jobs. */
  async #handle({ kind, shard: i, payload }: RunEvent): Promise<void> {
    const { tracker } = this.#parts;
    this.#seen.set(i, (this.#seen.get(i) ?? 0) + 1);
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
        await this.#markDone(i, parsed.success ? parsed.data.worker : undefined);
        break;
      }
      case 'failed':
        tracker.waiting(i);
        await this.#markFailed(i);
        break;
      default: // waiting (handed back, refused, retried), delayed (backoff), stalled (its worker died)
        tracker.waiting(i);
    }
  }

  /** Asks for every remaining shard's job state, the workers and the refusals; emits new refusals and an update. */
  async #poll(): Promise<void> {
    const { planned, jobs, tracker, refusals, queue, emit } = this.#parts;
    const left = tracker.remaining();
    const before = new Map(this.#seen);
    for (const [k, state] of (await jobs.states(left)).entries()) {
      const i = left[k]!;
      if (state === 'unknown' || state === 'completed') await this.#markDone(i);
      else if (state === 'failed') await this.#markFailed(i);
      else if (this.#seen.get(i) !== before.get(i)) continue;
      else if (state === 'active') tracker.running(i);
      else tracker.waiting(i);
    }
    tracker.workers = await queue.getWorkersCount().catch(() => tracker.workers);
    tracker.refusals = await refusals.read(planned.descriptor.runKey).catch(() => tracker.refusals);
    for (const refusal of tracker.refusals) {
      const key = `${refusal.worker}\0${refusal.code}\0${refusal.message}`;
      if (this.#shown.has(key)) continue;
      this.#shown.add(key);
      emit({ type: 'refused', refusal, progress: tracker.snapshot() });
    }
    emit({ type: 'update', progress: tracker.snapshot() });
  }

  /**
   * Handles events and polls until every shard is complete; rejects with the
   * signal's reason, or with ERR_SHARDS_FAILED when shards failed on every
   * attempt (naming them and their reasons, for `out`).
   */
  async follow(events: RunEvents, signal: AbortSignal, pollMs: number, out: string): Promise<void> {
    const { tracker } = this.#parts;
    let nextPoll = 0;
    while (!tracker.complete) {
      if (signal.aborted) throw signal.reason;
      for (let event = events.take(); event; event = events.take()) await untilAborted(this.#handle(event), signal);
      if (performance.now() >= nextPoll) {
        await untilAborted(this.#poll(), signal);
        // A poll asks for every remaining shard's state: spaced out by 1 ms per shard, so a run of
        // many shards keeps Redis below about a thousand such calls per second (events come in between).
        nextPoll = performance.now() + pollMs + tracker.remaining().length;
      }
      if (tracker.complete) break;
      if (tracker.stuck) {
        const { failures } = tracker.snapshot();
        throw new TorchGuidanceError(
          ErrorCodes.SHARDS_FAILED,
          `${failures.length} shard(s) of ${out} failed on every attempt:\n` +
            failures.map((f) => `  shard ${f.shard + 1}: ${f.reason}`).join('\n') +
            "\nFix the cause (the workers' logs say more) and rerun the same command: it retries them.",
        );
      }
      await events.wait(nextPoll - performance.now(), signal);
    }
  }
}
