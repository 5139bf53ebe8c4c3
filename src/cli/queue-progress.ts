/**
 * Progress of a queued run on stderr, as the coordinator sees it: the plan,
 * one line per shard that lands (by which worker), refusals and failures as
 * they appear, and the whole run's state: shards done / running / failed,
 * images per second across the workers, the ETA, the workers connected. On a
 * terminal the state is one line rewritten in place; otherwise it comes with
 * each shard line, and every 30 s when nothing else was printed.
 */
import type { QueuedRunEvent } from '../queue/coordinator.js';
import type { RunProgress } from '../queue/run-tracker.js';
import { formatDuration } from './progress.js';

/** "4 done, 2 running, 0 failed; 64/240 images, 12.1 images/s, ETA 15s; 3 worker(s)" */
export function describeProgress(p: RunProgress): string {
  const rate = p.rate.toFixed(p.rate < 10 ? 2 : 1);
  return (
    `${p.done}/${p.shards} shards done, ${p.running} running, ${p.failed} failed; ` +
    `${Math.floor(p.images)}/${p.total} images, ${rate} images/s, ETA ${formatDuration(p.etaSeconds)}; ${p.workers} worker(s)`
  );
}

export class QueueProgress {
  readonly #stream: NodeJS.WriteStream;
  readonly #tty: boolean;
  #drawn = false;
  #lastLine = performance.now();
  #last: RunProgress | undefined;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#tty = stream.isTTY === true;
  }

  /** The latest progress seen. */
  get last(): RunProgress | undefined {
    return this.#last;
  }

  #line(text: string): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
    this.#stream.write(`${text}\n`);
    this.#lastLine = performance.now();
  }

  readonly event = (event: QueuedRunEvent): void => {
    const p = event.progress;
    this.#last = p;
    switch (event.type) {
      case 'planned':
        this.#line(
          `queued ${p.total} images in ${p.shards} shard(s) of ${event.shardSize} into ${event.out} for ${event.device} workers on ${event.queue}` +
            (event.grewFrom === undefined ? '' : `; growing the run from ${event.grewFrom} images`) +
            (p.kept > 0 ? `; resuming: ${p.kept} shard(s) done` : '') +
            `; ${event.added} job(s) added, ${event.queued} already queued` +
            (event.retried > 0 ? `, ${event.retried} failed one(s) retried` : ''),
        );
        break;
      case 'shard-done':
        this.#line(
          `shard ${event.shard + 1}/${p.shards} done${event.worker ? ` by ${event.worker}` : ''} (samples ${event.first}..${event.first + event.count - 1}); ${describeProgress(p)}`,
        );
        break;
      case 'shard-failed':
        this.#line(`shard ${event.shard + 1}/${p.shards} failed on every attempt: ${event.reason}`);
        break;
      case 'refused':
        this.#line(`worker ${event.refusal.worker} refused the run: ${event.refusal.code}: ${event.refusal.message}`);
        break;
      case 'merging':
        this.#line(`all ${p.shards} shard(s) are in; merging`);
        break;
      case 'update':
        if (this.#tty) {
          this.#stream.write(`\r\x1b[2K${describeProgress(p)}`);
          this.#drawn = true;
        } else if (performance.now() - this.#lastLine > 30_000) {
          this.#line(describeProgress(p));
        }
        break;
    }
  };

  /** Clears the state line (terminal) before the final report. */
  finish(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
  }
}
