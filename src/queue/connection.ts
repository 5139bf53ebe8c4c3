/**
 * Where a sampling queue lives: a Redis address, redis://[user:password@]HOST:PORT/DB
 * (rediss:// for TLS), and a queue name on it. Checked before anything
 * connects, and reached once with a short timeout before a coordinator or a
 * worker starts, so a wrong address fails in seconds with a message instead
 * of retrying forever (BullMQ's connections retry without end, which is what
 * a running worker wants when Redis restarts).
 *
 * This module does not import BullMQ: the `sample` command's flag checks use it.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';

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

/** Connection options in ioredis' form (what BullMQ takes). */
export interface RedisConnectionOptions {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls?: Record<string, never>;
  /** BullMQ's workers block on Redis; their connections must not give up on a command. */
  maxRetriesPerRequest: null;
}

/** The ioredis options of a checked URL. */
export function connectionOptions(url: string): RedisConnectionOptions {
  const problem = queueUrlProblem(url);
  if (problem) throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `queue URL ${redactedUrl(url)}: ${problem}`);
  const parsed = new URL(url);
  const db = parsed.pathname.replace(/^\//, '');
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port ? Number(parsed.port) : 6379,
    db: db ? Number(db) : 0,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/** The URL without its password, for messages and logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/**
 * Connects once, sends PING and disconnects; rejects with
 * ERR_QUEUE_UNREACHABLE after `timeoutMs` or on the first connection error.
 */
export async function checkReachable(url: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  const { Redis } = await import('ioredis');
  const timeoutMs = options.timeoutMs ?? 5000;
  options.signal?.throwIfAborted();
  const client = new Redis({
    ...connectionOptions(url),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // Errors arrive through the promise below; without a listener ioredis would also print them.
  client.on('error', () => undefined);
  const unreachable = (reason: string, cause?: unknown) =>
    new TorchGuidanceError(
      ErrorCodes.QUEUE_UNREACHABLE,
      `cannot reach the queue's Redis at ${redactedUrl(url)}: ${reason}. Start Redis there (e.g. redis-server --port ${connectionOptions(url).port}) or give the right address.`,
      { cause },
    );
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => client.disconnect();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.ping();
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(unreachable(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    options.signal?.throwIfAborted();
    if (error instanceof TorchGuidanceError) throw error;
    throw unreachable((error as Error).message, error);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    client.disconnect();
  }
}
