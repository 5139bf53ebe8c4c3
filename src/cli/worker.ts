/**
 * `torch-guidance worker`: one process's share of queued sampling runs. It
 * takes shard jobs from the queue until stopped, and logs one line per event
 * on stderr. SIGTERM or Ctrl-C: no new shards; the ones in progress get
 * --grace seconds to finish and are then handed back to the queue; a second
 * signal hands them back at once.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { redactedUrl } from '../queue/connection.js';
import { runWorker } from '../queue/index.js';
import type { SamplingWorkerOptions, WorkerEvent } from '../queue/worker-options.js';
import type { SamplingWorker } from '../queue/worker.js';
import { deviceFlag, intFlag, parseFlags, queueFlags } from '../runs/flags.js';
import { UsageError } from '../core/usage-error.js';
import { EXIT_INTERRUPTED, withSignals } from './signals.js';

/** The column where the help's option texts start. */
const COLUMN = 25;

/** The command's --help text. */
export const workerHelp = `Usage: torch-guidance worker --queue redis://HOST:PORT/DB [options]

Samples shards of the runs a coordinator ('torch-guidance sample --queue')
put on the queue, into each run's folder, which this machine must see at the
same path (a shared file system). Start one per GPU (--device cuda:N), or a
few per CPU machine with the torch threads split between them. A run's models
are loaded at its first shard and kept for the next ones. The worker refuses
a run whose model files differ from the run's (SHA-256) or that it would
sample with other settings (device kind, TORCH_GUIDANCE_JOB_THREADS): the
shard goes back to the queue for other workers, and the coordinator shows why.

Options:
${queueFlags.help(COLUMN, "the queue's Redis, redis://HOST:PORT/DB (required)")}
  --concurrency N        shards sampled at once (default 1); they share the
                         models and the torch threads
${deviceFlag.help(COLUMN, "auto (default: each run's device kind), cpu, cuda, cuda:N")}
  --models DIR           look for the run's model files here by file name
                         first (for machines that keep models elsewhere)
  --grace SECONDS        on SIGTERM, how long shards in progress may take to
                         finish before they go back to the queue (default 20)
  --lock-duration SECONDS  a worker silent this long counts as dead and its
                         shard goes to another worker (default 30)
  --stalled-interval SECONDS  how often to look for shards of dead workers
                         (default 30)
  --refusal-backoff SECONDS  after refusing a run, take no shard for this
                         long (default 10)
  --id NAME              this worker's name in logs and jobs (default host:pid)

Logs go to stderr, one line per event. Exit codes: 0 stopped by a signal,
1 error (code printed), 2 bad flag.

Examples:
  torch-guidance worker --queue redis://10.0.0.5:6379/0 --device cuda:0
  TORCH_GUIDANCE_INTRAOP_THREADS=4 torch-guidance worker --queue redis://127.0.0.1:6379/0 --device cpu`;

function seconds(flag: string, raw: string, min: number): number {
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > 86_400) {
    throw new UsageError(`${flag} ${raw}: give a number of seconds from ${min} to 86400`);
  }
  return Math.round(value * 1000);
}

/** One log line per worker event. */
export function describeWorkerEvent(event: WorkerEvent): string | undefined {
  const shard = 'shard' in event && event.shard !== undefined ? `shard ${event.shard + 1}/${event.of} of ${event.location}` : '';
  switch (event.type) {
    case 'ready':
      return `worker ${event.worker} ready: queue ${event.queue}, concurrency ${event.concurrency}, device ${event.device}`;
    case 'started':
      return `${shard}: sampling (samples ${event.first}..${event.first + event.count - 1})${event.loadedNow ? '; models loaded and checked' : ''}`;
    case 'done': {
      const { status, ms } = event.result;
      const s = (value: number) => (value / 1000).toFixed(2);
      if (status === 'written') return `${shard}: written in ${s(ms.total)} s (sampling ${s(ms.sample)} s, writing ${s(ms.write)} s)`;
      return status === 'present' ? `${shard}: already complete in storage` : `${shard}: obsolete (the run's settings changed since), skipped`;
    }
    case 'refused':
      return `${shard}: refused: ${event.code}: ${event.message}`;
    case 'handed-back':
      return `${shard}: handed back to the queue`;
    case 'failed':
      return `${shard || `job ${event.jobId}`}: failed: ${event.message}`;
    case 'stopping':
      return `stopping: no new shards; ${event.active} in progress ${event.graceMs > 0 ? `get ${event.graceMs / 1000} s to finish, then go` : 'go'} back to the queue`;
    case 'error':
      return `queue error: ${event.message}`;
  }
}

/** The checked options of runWorker() that the command line sets. */
type WorkerFlags = Omit<SamplingWorkerOptions, 'signal' | 'onEvent'> & { url: string };

function readWorkerFlags(argv: string[]): WorkerFlags {
  const { values } = parseFlags(argv, {
    ...queueFlags.option,
    concurrency: { type: 'string', default: '1' },
    ...deviceFlag.option,
    models: { type: 'string' },
    grace: { type: 'string', default: '20' },
    'lock-duration': { type: 'string', default: '30' },
    'stalled-interval': { type: 'string', default: '30' },
    'refusal-backoff': { type: 'string', default: '10' },
    id: { type: 'string' },
  } as const);
  if (values.queue === undefined) throw new UsageError('--queue: give the queue\'s Redis, e.g. --queue redis://127.0.0.1:6379/0');
  const queue = queueFlags.read(values.queue, values['queue-name'])!;
  const device = deviceFlag.read(values.device);
  if (values.models !== undefined && values.models.trim() === '') throw new UsageError('--models: give a folder');
  if (values.id !== undefined && (values.id.trim() === '' || values.id.length > 200)) throw new UsageError('--id: give a name of 1 to 200 characters');
  return {
    url: queue.url,
    name: queue.name,
    concurrency: intFlag('--concurrency', values.concurrency, 1, 64),
    device,
    ...(values.models !== undefined ? { models: values.models } : {}),
    graceMs: seconds('--grace', values.grace, 0),
    lockDurationMs: seconds('--lock-duration', values['lock-duration'], 1),
    stalledIntervalMs: seconds('--stalled-interval', values['stalled-interval'], 0.1),
    refusalBackoffMs: seconds('--refusal-backoff', values['refusal-backoff'], 0),
    ...(values.id !== undefined ? { id: values.id } : {}),
  };
}

/** A timestamped line on stderr. */
function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** Logs each worker event as one line; connection errors repeat while Redis is away, so each message once a minute. */
function eventLogger(): (event: WorkerEvent) => void {
  const lastErrors = new Map<string, number>();
  return (event) => {
    if (event.type === 'error') {
      const now = Date.now();
      if (now - (lastErrors.get(event.message) ?? -Infinity) < 60_000) return;
      lastErrors.set(event.message, now);
    }
    const line = describeWorkerEvent(event);
    if (line) log(line);
  };
}

/** Runs `torch-guidance worker` with `argv` until a signal stops it. */
export async function workerCommand(argv: string[]): Promise<void> {
  const options = readWorkerFlags(argv);
  const controller = new AbortController();
  let signals = 0;
  let worker: SamplingWorker | undefined;
  // First signal: no new shards, the running ones get --grace; second: hand them back now; third: exit.
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      log(`${signal}: stopping (again to hand the shards in progress back at once)`);
      controller.abort(new TorchGuidanceError(ErrorCodes.ABORTED, `interrupted by ${signal}`));
    } else if (signals === 2 && worker) {
      log(`${signal}: handing the shards in progress back`);
      void worker.stop({ graceMs: 0 });
    } else {
      process.exit(EXIT_INTERRUPTED);
    }
  };
  await withSignals(onSignal, async () => {
    try {
      worker = await runWorker({ ...options, signal: controller.signal, onEvent: eventLogger() });
    } catch (error) {
      if (controller.signal.aborted) return;
      throw error;
    }
    log(`queue ${redactedUrl(options.url)}; waiting for shards`);
    const summary = await worker.closed;
    log(
      `stopped: ${summary.written} shard(s) written, ${summary.present} found complete, ${summary.handedBack} handed back, ` +
        `${summary.refused} refused, ${summary.failed} failed, ${summary.obsolete} obsolete`,
    );
    // When Redis is gone at the stop, BullMQ's lock timer can outlive the dropped connections; a
    // stopped worker process ends anyway (the timer is unref'd: it fires only if something lingers).
    setTimeout(() => process.exit(process.exitCode ?? 0), 5000).unref();
  });
}
