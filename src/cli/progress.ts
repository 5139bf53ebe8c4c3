/**
 * Progress of a batch run on stderr: on a terminal one line rewritten in
 * place (bar, images, images/s, ETA, at most 10 times a second); otherwise
 * plain lines, one per finished shard, that logs and CI keep readable.
 * Rates count only images made by this process (skipped shards excluded).
 */

export interface ProgressOptions {
  total: number;
  /** Images already on disk when the run started (skipped shards). */
  already: number;
  shards: number;
  stream?: NodeJS.WriteStream;
  /** Force TTY or plain output (default: the stream's isTTY). */
  tty?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

export class Progress {
  readonly #total: number;
  readonly #already: number;
  readonly #shards: number;
  readonly #stream: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #started = performance.now();
  #made = 0;
  #lastDraw = 0;
  #drawn = false;

  constructor(options: ProgressOptions) {
    this.#total = options.total;
    this.#already = options.already;
    this.#shards = options.shards;
    this.#stream = options.stream ?? process.stderr;
    this.#tty = options.tty ?? this.#stream.isTTY === true;
  }

  get tty(): boolean {
    return this.#tty;
  }

  #rate(made: number): number {
    const seconds = (performance.now() - this.#started) / 1000;
    return seconds > 0 ? made / seconds : 0;
  }

  #summary(made: number): string {
    const done = this.#already + made;
    const rate = this.#rate(made);
    const eta = rate > 0 ? (this.#total - done) / rate : Infinity;
    return `${Math.floor(done)}/${this.#total} images, ${rate.toFixed(rate < 10 ? 2 : 1)} images/s, ETA ${formatDuration(eta)}`;
  }

  /** A message line (clears the progress line first on a terminal). */
  log(line: string): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
    this.#stream.write(`${line}\n`);
  }

  /**
   * In-shard progress: `made` images this process has finished so far,
   * counting fractions of the batch in flight. Drawn on a terminal only.
   */
  update(made: number, shard: number): void {
    if (!this.#tty) return;
    const now = performance.now();
    if (now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const done = this.#already + made;
    const width = 24;
    const filled = Math.min(width, Math.floor((done / this.#total) * width));
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    this.#stream.write(`\r\x1b[2K${bar} ${this.#summary(made)}  shard ${shard + 1}/${this.#shards}`);
    this.#drawn = true;
  }

  /** A shard landed on disk. */
  shardDone(shard: number, first: number, n: number): void {
    this.#made += n;
    const line = `shard ${shard + 1}/${this.#shards} written (samples ${first}..${first + n - 1}); ${this.#summary(this.#made)}`;
    if (this.#tty) {
      this.#lastDraw = 0;
      this.update(this.#made, Math.min(shard + 1, this.#shards - 1));
    } else {
      this.log(line);
    }
  }

  get made(): number {
    return this.#made;
  }

  /** Clears the progress line (terminal) before the final report. */
  finish(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
  }

  elapsedSeconds(): number {
    return (performance.now() - this.#started) / 1000;
  }
}
