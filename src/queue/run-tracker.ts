/**
 * The coordinator's picture of a queued run: which shards are done, running
 * (with how far each has come) or failed, and the rates it gives. Shards are
 * counted by index, so an event that arrives twice (a shard sampled again
 * after a stall, a completion seen both as an event and by a later poll) is
 * counted once. Pure bookkeeping: the queue and storage calls are the
 * coordinator's.
 */
import { type ShardPlan, shardRange } from '../io/shards.js';
import type { Refusal } from './refusals.js';

/** The whole run at one moment. */
export interface RunProgress {
  shards: number;
  /** Samples in the run. */
  total: number;
  /** Shards complete in storage (kept ones included). */
  done: number;
  /** Shards complete before this coordinator started watching. */
  kept: number;
  running: number;
  /** Shards whose every attempt failed (rerunning the coordinator retries them). */
  failed: number;
  /** Samples complete in storage. */
  images: number;
  /** Samples made while this coordinator watched, counting shards in progress by how far they are. */
  made: number;
  /** Samples per second across all workers, over the watch so far. */
  rate: number;
  /** Seconds left at that rate (Infinity before any progress). */
  etaSeconds: number;
  elapsedSeconds: number;
  /** Workers connected to the queue (all runs'), at the last poll. */
  workers: number;
  refusals: Refusal[];
  failures: { shard: number; reason: string }[];
}

export class RunTracker {
  readonly #plan: ShardPlan;
  readonly #done = new Set<number>();
  readonly #kept: number;
  /** Shard -> samples made so far in its current attempt. */
  readonly #running = new Map<number, number>();
  readonly #failed = new Map<number, string>();
  readonly #started = performance.now();
  #madeInDone = 0;
  workers = 0;
  refusals: Refusal[] = [];

  constructor(plan: ShardPlan, completeAtStart: Iterable<number>) {
    this.#plan = plan;
    for (const i of completeAtStart) this.#done.add(i);
    this.#kept = this.#done.size;
  }

  isDone(i: number): boolean {
    return this.#done.has(i);
  }

  isFailed(i: number): boolean {
    return this.#failed.has(i);
  }

  /** Shards not complete, in order. */
  remaining(): number[] {
    return Array.from({ length: this.#plan.shards }, (_, i) => i).filter((i) => !this.#done.has(i));
  }

  running(i: number): void {
    if (this.#done.has(i)) return;
    this.#failed.delete(i);
    if (!this.#running.has(i)) this.#running.set(i, 0);
  }

  progress(i: number, made: number): void {
    if (this.#done.has(i) || !Number.isFinite(made)) return;
    this.#failed.delete(i);
    this.#running.set(i, Math.max(0, Math.min(made, shardRange(this.#plan, i).n)));
  }

  /** Back in the queue (handed back, stalled, retried, delayed). */
  waiting(i: number): void {
    this.#running.delete(i);
  }

  failed(i: number, reason: string): void {
    if (this.#done.has(i)) return;
    this.#running.delete(i);
    this.#failed.set(i, reason);
  }

  /** Marks shard `i` complete; true the first time only. */
  done(i: number): boolean {
    this.#running.delete(i);
    this.#failed.delete(i);
    if (this.#done.has(i)) return false;
    this.#done.add(i);
    this.#madeInDone += shardRange(this.#plan, i).n;
    return true;
  }

  get complete(): boolean {
    return this.#done.size === this.#plan.shards;
  }

  /** Every shard is done or failed, and some failed: nothing more will happen without a retry. */
  get stuck(): boolean {
    return this.#failed.size > 0 && this.#done.size + this.#failed.size === this.#plan.shards;
  }

  snapshot(): RunProgress {
    const elapsedSeconds = (performance.now() - this.#started) / 1000;
    let inFlight = 0;
    for (const made of this.#running.values()) inFlight += made;
    const made = this.#madeInDone + inFlight;
    const images = [...this.#done].reduce((sum, i) => sum + shardRange(this.#plan, i).n, 0);
    const rate = elapsedSeconds > 0 ? made / elapsedSeconds : 0;
    const left = this.#plan.count - images - inFlight;
    return {
      shards: this.#plan.shards,
      total: this.#plan.count,
      done: this.#done.size,
      kept: this.#kept,
      running: this.#running.size,
      failed: this.#failed.size,
      images,
      made,
      rate,
      etaSeconds: left <= 0 ? 0 : rate > 0 ? left / rate : Infinity,
      elapsedSeconds,
      workers: this.workers,
      refusals: this.refusals,
      failures: [...this.#failed].map(([shard, reason]) => ({ shard, reason })),
    };
  }
}
