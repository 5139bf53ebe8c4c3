/**
 * Options of createSamplingQueue(), kept apart from the coordinator so that
 * they load without BullMQ.
 */
import { z } from 'zod';

import { DEFAULT_QUEUE_NAME, queueNameProblem, queueUrlProblem } from '../runs/queue-address.js';

/** Options of createSamplingQueue(). Times are in milliseconds. */
export const samplingQueueOptionsSchema = z
  .object({
    /** The queue's Redis: redis://HOST:PORT/DB (rediss:// for TLS). */
    url: z.string().refine((url) => queueUrlProblem(url) === undefined, { message: 'give redis://HOST:PORT/DB' }),
    /** The queue's name; workers take the same. */
    name: z.string().refine((name) => queueNameProblem(name) === undefined, { message: 'letters, digits, dots, dashes or underscores' }).default(DEFAULT_QUEUE_NAME),
    /** How long to wait for Redis before failing with ERR_QUEUE_UNREACHABLE. */
    connectTimeoutMs: z.number().int().min(1).default(5000),
    /** How often a waiting run polls its jobs, refusals and workers (events arrive in between). */
    pollMs: z.number().int().min(10).default(2000),
    /** Attempts per shard before it counts as failed. */
    attempts: z.number().int().min(1).max(100).default(3),
    /** First retry delay after a failed attempt (doubles each time). */
    backoffMs: z.number().int().min(0).default(10_000),
    /** Checked before and during the connection check at creation. */
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/** Options of createSamplingQueue: the Redis `url`, the queue `name`, polling and retry settings, a `signal`. */
export type SamplingQueueOptions = z.input<typeof samplingQueueOptionsSchema>;
