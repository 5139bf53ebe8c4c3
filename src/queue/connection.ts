/**
 * Where a sampling queue lives: a Redis address, redis://[user:password@]HOST:PORT/DB
 * (rediss:// for TLS), and a queue name on it. Checked before anything
 * connects, and reached once with a short timeout before a coordinator or a
 * worker starts, so a wrong address fails in seconds with a message instead
 * of retrying forever (BullMQ's connections retry without end, which is what
 * a running worker wants when Redis restarts).
 *
 * The address checks themselves are in src/runs/queue-address.ts, where the
 * `sample` command's flag checks use them without loading a queue client.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { queueUrlProblem } from '../runs/queue-address.js';

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
