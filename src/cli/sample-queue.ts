/**
 * `torch-guidance sample --queue URL`: the command as a coordinator. It plans
 * the run as without a queue, adds one job per unfinished shard for the
 * workers (`torch-guidance worker`), shows the whole run's progress and
 * merges it at the end (src/queue/coordinator.ts). Ctrl-C or SIGTERM stops
 * following the run, not the workers; the same command resumes.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { MERGED, PNG_DIR } from '../io/shards.js';
import { type QueuedRunResult, coordinateRun } from '../queue/coordinator.js';
import { formatDuration } from './progress.js';
import { QueueProgress } from './queue-progress.js';
import { untilInterrupted } from './signals.js';
import type { Flags } from '../runs/run-flags.js';

/** Runs the sample command's checked flags as a coordinator of the queue `flags.queue`. */
export async function sampleOnQueue(flags: Flags & { queue: NonNullable<Flags['queue']> }): Promise<void> {
  const progress = new QueueProgress();
  let signal: AbortSignal | undefined;
  try {
    const result = await untilInterrupted((aborted) => {
      signal = aborted;
      return coordinateRun(flags, { url: flags.queue.url, name: flags.queue.name, signal: aborted, wait: true, onEvent: progress.event });
    });
    progress.finish();
    console.log(queuedRunSummary(flags, result));
  } catch (error) {
    progress.finish();
    if (signal?.aborted) {
      const last = progress.last;
      throw new TorchGuidanceError(
        ErrorCodes.ABORTED,
        `${(signal.reason as Error).message}: stopped following the run` +
          (last ? ` with ${last.done} of ${last.shards} shard(s) complete in ${flags.outArg}` : '') +
          `. The workers go on with the queued shards; rerun the same command to follow the run and merge it.`,
      );
    }
    throw error;
  }
}

/** The closing line: what the run's folder holds, and what the workers made while this command watched. */
function queuedRunSummary(flags: Flags, result: QueuedRunResult): string {
  const what = [
    flags.format !== 'png' ? `${MERGED} and ${result.shards} shard(s)` : '',
    flags.format !== 'npz' ? `${result.count} PNGs in ${PNG_DIR}/` : '',
  ]
    .filter(Boolean)
    .join(', ');
  return result.kept === result.shards
    ? `${flags.outArg} ${result.merged ? `is complete (${MERGED} rewritten from the shards)` : 'is already complete'}: ${what}.`
    : `wrote ${what} to ${flags.outArg}: ${Math.round(result.made)} image(s) made by the queue's workers in ${formatDuration(result.seconds)} ` +
        `(${(result.made / result.seconds).toFixed(2)} images/s), ${result.kept} shard(s) kept from before.`;
}
