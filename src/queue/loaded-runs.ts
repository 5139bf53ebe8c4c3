/**
 * A worker's loaded runs: the models of a run are loaded once and shared by
 * every job of the run this worker takes (also concurrent ones), and disposed
 * when the worker moves on to another run or stops.
 *
 * Loading a run is also where a worker decides whether it may sample it. It
 * parses the run's flags with the `sample` command's own readFlags() (its
 * model paths, the run's folder, its device), compares the SHA-256 of each
 * model file it found with the run's, loads the models, and compares the
 * settings it would sample with (device kind and torch threads included)
 * against the run's manifest. Any difference means other bytes, so the run is
 * refused with a TorchGuidanceError naming the difference; the refusal is
 * remembered for a while, so the worker does not reload for every job.
 */
import { access, constants } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { deviceSettings, loadRun, type Run } from '../runs/load-run.js';
import { readFlags, type Flags } from '../runs/run-flags.js';
import { UsageError } from '../core/usage-error.js';
import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError, type ErrorCode } from '../core/errors.js';
import { type Manifest, settingsDiff, shardPlan } from '../io/shards.js';
import type { Model } from '../model/model.js';
import type { DeviceName } from '../core/tensor.js';
import { workerArgv } from './run-spec.js';
import type { RunModel, ShardJobData } from './shard-job.js';
import { type RunStorage, type ShardLayout, openRunStorage } from './storage.js';

/** A run ready to sample on this worker. */
export interface LoadedRun {
  readonly runKey: string;
  readonly flags: Flags;
  readonly run: Run;
  readonly layout: ShardLayout;
  readonly storage: RunStorage;
}

/** A loaded run in use by one job; release() when the job is done with it. */
export interface LoadedRunLease {
  readonly loaded: LoadedRun;
  /** Whether this call loaded the models (false: they were already loaded). */
  readonly fresh: boolean;
  release(): void;
}

export interface LoadedRunsOptions {
  /** The worker's device: 'auto' takes the run's device kind. */
  device: DeviceName;
  /** A folder to look for model files in by file name before the run's own paths. */
  models?: string | undefined;
  /** How long a refused run stays refused before the worker checks again (ms). */
  recheckRefusedMs: number;
  /** Aborts loads in progress when the worker stops. */
  signal: AbortSignal;
}

interface Entry {
  promise: Promise<LoadedRun & { models: Model[] }>;
  users: number;
}

/** The device kind of a resolved device ('cuda:1' is 'cuda'). */
export function deviceKind(device: string): string {
  return device.replace(/:\d+$/, '');
}

/** A UsageError of readFlags() on a worker: a model file it cannot read, a run folder it cannot see, or flags of another version. */
function fromUsage(error: UsageError): TorchGuidanceError {
  const code: ErrorCode = /^--(model|guide|sims) /.test(error.message)
    ? ErrorCodes.MODEL_NOT_FOUND
    : /^--out /.test(error.message)
      ? ErrorCodes.RUN_NOT_FOUND
      : ErrorCodes.INVALID_JOB;
  return new TorchGuidanceError(code, `this worker cannot take the run: ${error.message}`);
}

function mismatchMessage(path: string, mine: string, run: RunModel): string {
  return (
    `the ${run.role} file ${path} on this worker has SHA-256 ${mine.slice(0, 16)}…, but the run was planned with ` +
    `${run.path} of SHA-256 ${run.sha256.slice(0, 16)}…; its samples would differ. Give this worker the run's file ` +
    `(at the same path, or in the folder of worker --models).`
  );
}

export class LoadedRuns {
  readonly #options: LoadedRunsOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #refused = new Map<string, { error: TorchGuidanceError; until: number }>();
  #disposed = false;

  constructor(options: LoadedRunsOptions) {
    this.#options = options;
  }

  /**
   * The run of `job`, loaded and checked against `manifest` (the run's, as
   * read by the caller). Rejects with the reason when this worker may not
   * sample the run.
   */
  async acquire(job: ShardJobData, manifest: Manifest): Promise<LoadedRunLease> {
    if (this.#disposed) throw new TorchGuidanceError(ErrorCodes.DISPOSED, 'the worker is stopping');
    const refused = this.#refused.get(job.runKey);
    if (refused && refused.until > Date.now()) throw refused.error;
    this.#refused.delete(job.runKey);

    let entry = this.#entries.get(job.runKey);
    const fresh = entry === undefined;
    if (!entry) {
      entry = { promise: this.#load(job, manifest), users: 0 };
      this.#entries.set(job.runKey, entry);
    }
    entry.users++;
    let loaded;
    try {
      loaded = await entry.promise;
    } catch (error) {
      entry.users--;
      if (this.#entries.get(job.runKey) === entry) this.#entries.delete(job.runKey);
      // An abort is this worker stopping, not a verdict on the run.
      if (isTorchGuidanceError(error) && !this.#options.signal.aborted) {
        this.#refused.set(job.runKey, { error, until: Date.now() + this.#options.recheckRefusedMs });
      }
      throw error;
    }
    // One run's models at a time besides those in use: a worker that moves on frees the old run.
    for (const [key, other] of this.#entries) {
      if (key !== job.runKey && other.users === 0) this.#evict(key, other);
    }
    let released = false;
    return {
      loaded,
      fresh,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (this.#disposed && entry.users === 0) this.#evict(job.runKey, entry);
      },
    };
  }

  async #findModel(path: string): Promise<string> {
    if (this.#options.models === undefined) return path;
    const candidate = join(this.#options.models, basename(path));
    return (await access(candidate, constants.R_OK).then(() => true, () => false)) ? candidate : path;
  }

  async #load(job: ShardJobData, manifest: Manifest): Promise<LoadedRun & { models: Model[] }> {
    const device = (this.#options.device === 'auto' ? job.device : this.#options.device) as DeviceName;
    const paths = await Promise.all(job.models.map(async (m) => ({ role: m.role, path: await this.#findModel(m.path) })));
    let flags: Flags;
    try {
      flags = await readFlags(workerArgv(job.argv, paths, job.location, device));
    } catch (error) {
      if (error instanceof UsageError || String((error as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) throw fromUsage(error as UsageError);
      throw error;
    }
    for (const model of job.models) {
      const mine = flags[model.role];
      if (mine && mine.sha256 !== model.sha256) {
        throw new TorchGuidanceError(ErrorCodes.MODEL_MISMATCH, mismatchMessage(mine.path, mine.sha256, model));
      }
    }
    const models: Model[] = [];
    try {
      let run: Run;
      try {
        run = await loadRun(flags, this.#options.signal, models);
      } catch (error) {
        if (error instanceof UsageError) throw fromUsage(error);
        throw error;
      }
      const settings = { ...run.settings, ...deviceSettings(deviceKind(run.main.device), flags.parallel) };
      const diff = settingsDiff(manifest.settings, settings);
      if (diff.length > 0) {
        const threads = diff.some((d) => d.path === 'parallelThreads')
          ? ' (parallelThreads: --parallel auto splits each forward by TORCH_GUIDANCE_JOB_THREADS, which must be the coordinator\'s; or plan the run with --parallel N)'
          : '';
        throw new TorchGuidanceError(
          ErrorCodes.SETTINGS_MISMATCH,
          `this worker would sample with other settings than the run's, and so make other bytes: ` +
            `${diff.map((d) => `${d.path}: run ${d.was}, here ${d.now}`).join('; ')}${threads}.`,
        );
      }
      const layout: ShardLayout = {
        plan: shardPlan(flags.count, flags.shardSize),
        format: flags.format,
        geometry: run.geometry,
        withLabels: run.withLabels,
      };
      return { runKey: job.runKey, flags, run, layout, storage: openRunStorage(job.location), models };
    } catch (error) {
      for (const model of models) model.dispose();
      throw error;
    }
  }

  #evict(key: string, entry: Entry): void {
    if (this.#entries.get(key) === entry) this.#entries.delete(key);
    entry.promise.then(
      (loaded) => {
        for (const model of loaded.models) model.dispose();
      },
      () => undefined,
    );
  }

  /** Disposes every run's models once no job uses them. */
  dispose(): void {
    this.#disposed = true;
    for (const [key, entry] of this.#entries) {
      if (entry.users === 0) this.#evict(key, entry);
    }
  }
}
