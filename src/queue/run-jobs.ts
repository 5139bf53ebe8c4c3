/**
 * The BullMQ jobs of one run, as the coordinator sees them: one per shard,
 * id `<run key>-<shard>`, the run's descriptor plus the shard as data,
 * retried with an exponential backoff, removed when complete and kept a week
 * when failed. Adding is idempotent: a shard whose job is waiting, running
 * or delayed gets none, a failed one is retried, and only a shard without a
 * job gets a new one.
 */
import type { JobState, Queue } from 'bullmq';

import { type ShardPlan, shardRange } from '../io/shards.js';
import { type RunDescriptor, SHARD_JOB, type ShardJobData, shardJobId } from './shard-job.js';

/** A job's state, or 'unknown' when the queue has no such job. */
export type ShardJobState = JobState | 'unknown';

export interface RunJobsOptions {
  /** Attempts per shard before it counts as failed. */
  attempts: number;
  /** First retry delay after a failed attempt (ms; doubles each time). */
  backoffMs: number;
}

export class RunJobs {
  readonly #queue: Queue;
  readonly #descriptor: RunDescriptor;
  readonly #plan: ShardPlan;
  readonly #options: RunJobsOptions;

  constructor(queue: Queue, descriptor: RunDescriptor, plan: ShardPlan, options: RunJobsOptions) {
    this.#queue = queue;
    this.#descriptor = descriptor;
    this.#plan = plan;
    this.#options = options;
  }

  #id(i: number): string {
    return shardJobId(this.#descriptor.runKey, i);
  }

  /** The states of the shards' jobs. */
  states(shards: readonly number[]): Promise<ShardJobState[]> {
    return Promise.all(shards.map((i) => this.#queue.getJobState(this.#id(i))));
  }

  /**
   * Gives each of `shards` (incomplete in storage) a live job, from `states`
   * read before storage was: a job that completed was removed after its
   * files were stored, so a shard incomplete in storage whose job was
   * 'unknown' before truly has none. Returns how many were added, already
   * queued, and retried after failing.
   */
  async ensure(shards: readonly number[], states: readonly ShardJobState[]): Promise<{ added: number; queued: number; retried: number }> {
    const add: number[] = [];
    let queued = 0;
    let retried = 0;
    for (const [k, state] of states.entries()) {
      const i = shards[k]!;
      if (state === 'unknown') add.push(i);
      else if (state === 'completed') {
        // Completed (kept by someone's queue settings) yet not in storage: sample it again.
        await this.#queue.remove(this.#id(i));
        add.push(i);
      } else if (state === 'failed') {
        await (await this.#queue.getJob(this.#id(i)))?.retry('failed');
        retried++;
      } else queued++;
    }
    if (add.length > 0) {
      await this.#queue.addBulk(
        add.map((i) => ({
          name: SHARD_JOB,
          data: this.#data(i),
          opts: {
            jobId: this.#id(i),
            attempts: this.#options.attempts,
            backoff: { type: 'exponential', delay: this.#options.backoffMs },
            removeOnComplete: true,
            removeOnFail: { age: 7 * 24 * 3600 },
          },
        })),
      );
    }
    return { added: add.length, queued, retried };
  }

  #data(i: number): ShardJobData {
    const { first, n } = shardRange(this.#plan, i);
    return { ...this.#descriptor, shard: { index: i, first, count: n, of: this.#plan.shards } };
  }

  /** Why shard `i`'s job failed on every attempt, or undefined when it has not. */
  async failure(i: number): Promise<string | undefined> {
    const job = await this.#queue.getJob(this.#id(i));
    if (!job || (await job.getState()) !== 'failed') return undefined;
    return job.failedReason || 'failed';
  }
}
