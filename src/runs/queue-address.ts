/**
 * Where a sampling queue lives, checked before anything connects: a Redis
 * address, redis://[user:password@]HOST:PORT/DB (rediss:// for TLS), and a
 * queue name on it. The `sample` and `worker` commands check their --queue
 * flags with these, and the queue (src/queue/connection.ts) its options,
 * without loading BullMQ.
 */

/** The queue name used when none is given. */
export const DEFAULT_QUEUE_NAME = 'torch-guidance';

/** Why `url` is not a Redis address this package can use, or undefined. */
export function queueUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL; give redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0';
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    return `the scheme is ${parsed.protocol.replace(/:$/, '')}; give redis://HOST:PORT/DB (rediss:// for TLS)`;
  }
  if (!parsed.hostname) return 'no host; give redis://HOST:PORT/DB';
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,4}$/.test(db)) return `the database '${db}' is not a number; give redis://HOST:PORT/DB with DB a number such as 0`;
  if (parsed.search || parsed.hash) return 'query strings and fragments are not used; give redis://HOST:PORT/DB';
  return undefined;
}

/** Why `name` cannot name a queue, or undefined. BullMQ joins key parts with ':', so names avoid it. */
export function queueNameProblem(name: string): string | undefined {
  return /^[A-Za-z0-9._-]{1,100}$/.test(name) ? undefined : 'use 1 to 100 letters, digits, dots, dashes or underscores';
}
