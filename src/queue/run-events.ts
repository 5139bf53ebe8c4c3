/**
 * One run's job events from BullMQ's event stream (a Redis stream read by
 * QueueEvents), queued for the coordinator's loop to take one at a time:
 * the loop stays sequential, so an event and a poll never update the run's
 * picture at once. The stream is shared by every run on the queue; events of
 * other runs are dropped by job id.
 */
import { QueueEvents } from 'bullmq';

import type { RedisConnectionOptions } from './connection.js';
import { parseShardJobId } from './shard-job.js';

/** An event of one of the run's jobs. */
export interface RunEvent {
  kind: 'active' | 'progress' | 'completed' | 'failed' | 'waiting' | 'delayed' | 'stalled';
  shard: number;
  /** What BullMQ sent: progress data under `data`, a return value under `returnvalue`. */
  payload: Record<string, unknown>;
}

const KINDS = ['active', 'progress', 'completed', 'failed', 'waiting', 'delayed', 'stalled'] as const;

export class RunEvents {
  readonly #events: QueueEvents;
  readonly #inbox: RunEvent[] = [];
  #wake: (() => void) | undefined;

  private constructor(events: QueueEvents, runKey: string) {
    this.#events = events;
    // Connection trouble shows as a run that stops moving; ioredis reconnects on its own.
    events.on('error', () => undefined);
    for (const kind of KINDS) {
      events.on(kind, (payload: { jobId: string }) => {
        const id = parseShardJobId(payload.jobId);
        if (id?.runKey !== runKey) return;
        this.#inbox.push({ kind, shard: id.index, payload: payload as unknown as Record<string, unknown> });
        this.#wake?.();
      });
    }
  }

  /** Starts listening; events from here on are kept. */
  static async open(name: string, connection: RedisConnectionOptions, runKey: string): Promise<RunEvents> {
    const events = new QueueEvents(name, { connection });
    const run = new RunEvents(events, runKey);
    await events.waitUntilReady();
    return run;
  }

  /** The next event, or undefined when none is waiting. */
  take(): RunEvent | undefined {
    return this.#inbox.shift();
  }

  /** Resolves after `ms`, or sooner when an event arrives or the signal fires. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(10, ms));
      this.#wake = done;
      signal.addEventListener('abort', done, { once: true });
      if (this.#inbox.length > 0 || signal.aborted) done();
    });
  }

  /** The underlying QueueEvents, for closing. */
  get connection(): QueueEvents {
    return this.#events;
  }
}
