/**
 * Ctrl-C and SIGTERM in the long-running commands: the first signal asks the
 * work to stop (an abort with ERR_ABORTED, so it ends where it is safe), a
 * second one exits at once with 130.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';

/** Exit status of a process ended by a second interrupt (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/**
 * Runs `work` with `onSignal` handling SIGINT and SIGTERM, and removes the
 * handler when the work settles.
 */
export async function withSignals<T>(onSignal: (signal: NodeJS.Signals) => void, work: () => Promise<T>): Promise<T> {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Runs `work` with a signal that the first SIGINT or SIGTERM aborts
 * (after `announce` says what happens now); a second one exits the process.
 */
export function untilInterrupted<T>(work: (signal: AbortSignal) => Promise<T>, announce?: (signal: NodeJS.Signals) => void): Promise<T> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(EXIT_INTERRUPTED);
    announce?.(signal);
    controller.abort(new TorchGuidanceError(ErrorCodes.ABORTED, `interrupted by ${signal}`));
  };
  return withSignals(onSignal, () => work(controller.signal));
}
