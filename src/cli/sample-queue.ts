/**
 * `torch-guidance sample --queue URL`: the command as a coordinator. It plans
 * the run as without a queue, adds one job per unfinished shard for the
 * workers (`torch-guidance worker`), shows the whole run's progress and
 * merges it at the end (src/queue/coordinator.ts). Ctrl-C or SIGTERM stops
 * following the run, not the workers; the same command resumes.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { MERGED, PNG_DIR } from '../io/shards.js';
import { coordinateRun } from '../queue/coordinator.js';
import { formatDuration } from './progress.js';
import { QueueProgress } from './queue-progress.js';
import type { Flags } from './sample-flags.js';

export async function sampleOnQueue(flags: Flags & { queue: NonNullable<Flags['queue']> }): Promise<void> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new TorchGuidanceError(ErrorCodes.ABORTED, `interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = new QueueProgress();
  try {
    const result = await coordinateRun(flags, { url: flags.queue.url, name: flags.queue.name, signal: controller.signal, wait: true, onEvent: progress.event });
    progress.finish();
    const what = [
      flags.format !== 'png' ? `${MERGED} and ${result.shards} shard(s)` : '',
      flags.format !== 'npz' ? `${result.count} PNGs in ${PNG_DIR}/` : '',
    ]
      .filter(Boolean)
      .join(', ');
    console.log(
      result.kept === result.shards
        ? `${flags.outArg} ${result.merged ? `is complete (${MERGED} rewritten from the shards)` : 'is already complete'}: ${what}.`
        : `wrote ${what} to ${flags.outArg}: ${Math.round(result.made)} image(s) made by the queue's workers in ${formatDuration(result.seconds)} ` +
            `(${(result.made / result.seconds).toFixed(2)} images/s), ${result.kept} shard(s) kept from before.`,
    );
  } catch (error) {
    progress.finish();
    if (controller.signal.aborted) {
      const last = progress.last;
      throw new TorchGuidanceError(
        ErrorCodes.ABORTED,
        `${(controller.signal.reason as Error).message}: stopped following the run` +
          (last ? ` with ${last.done} of ${last.shards} shard(s) complete in ${flags.outArg}` : '') +
          `. The workers go on with the queued shards; rerun the same command to follow the run and merge it.`,
      );
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
