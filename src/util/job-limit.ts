import { abortError } from '../errors.js';

/**
 * Lets at most `limit` jobs run at once; the rest wait in order. Native
 * forwards use libuv's pool, which file-system and DNS work share: the limit
 * keeps a pool thread free for them.
 */
export class JobLimit {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    // A free slot starts the job in this tick; otherwise it waits its turn.
    if (this.running < this.limit && !signal?.aborted) this.running++;
    else await this.acquire(signal);
    try {
      return await job();
    } finally {
      this.release();
    }
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const start = () => {
        signal?.removeEventListener('abort', onAbort);
        this.running++;
        resolve();
      };
      const onAbort = () => {
        const index = this.waiting.indexOf(start);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(start);
    });
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}
