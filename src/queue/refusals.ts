/**
 * Why workers refuse a run (a model file that differs, a folder they cannot
 * see, other torch threads): each refusing worker writes its reason into a
 * Redis hash of the run, which the coordinator shows, and removes it once it
 * takes the run after all. Kept beside BullMQ's keys, not inside them, and
 * expiring a week after the last refusal.
 */
import type { Redis } from 'ioredis';

/** One worker's refusal of a run. */
export interface Refusal {
  worker: string;
  code: string;
  message: string;
  /** ISO time of the latest refusal. */
  at: string;
}

const TTL_SECONDS = 7 * 24 * 3600;

/** The refusal records of one queue. */
export class Refusals {
  readonly #redis: Redis;
  readonly #queueName: string;

  constructor(redis: Redis, queueName: string) {
    this.#redis = redis;
    this.#queueName = queueName;
  }

  #key(runKey: string): string {
    return `torch-guidance:${this.#queueName}:refusals:${runKey}`;
  }

  /** Records (or renews) `worker`'s refusal of the run. */
  async record(runKey: string, refusal: Refusal): Promise<void> {
    const key = this.#key(runKey);
    await this.#redis.multi().hset(key, refusal.worker, JSON.stringify(refusal)).expire(key, TTL_SECONDS).exec();
  }

  /** Forgets `worker`'s refusal (it took the run). */
  async clear(runKey: string, worker: string): Promise<void> {
    await this.#redis.hdel(this.#key(runKey), worker);
  }

  /** Every current refusal of the run, by worker name. */
  async read(runKey: string): Promise<Refusal[]> {
    const all = await this.#redis.hgetall(this.#key(runKey));
    return Object.values(all)
      .map((text) => {
        try {
          return JSON.parse(text) as Refusal;
        } catch {
          return undefined;
        }
      })
      .filter((r): r is Refusal => r !== undefined)
      .sort((a, b) => a.worker.localeCompare(b.worker));
  }
}
