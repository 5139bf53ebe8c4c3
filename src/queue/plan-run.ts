/**
 * Planning a queued run, as the local `sample` command plans one: the flags
 * checked against the models (loaded on this machine's CPU for that alone,
 * since the workers may sample on GPUs this machine lacks), the settings with
 * the workers' device kind, the folder's lock and manifest (written, or
 * checked on a resume), and the descriptor every job of the run carries.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { deviceSettings, loadRun } from '../runs/load-run.js';
import { bytesPerSample, openOutput } from '../runs/run-output.js';
import type { Flags } from '../runs/run-flags.js';
import { type Manifest, PNG_DIR, shardPlan } from '../io/shards.js';
import type { Model } from '../model/model.js';
import { runtimeInfo } from '../core/runtime.js';
import { deviceKind } from './loaded-runs.js';
import { portableArgv, runModels } from './run-spec.js';
import { type RunDescriptor, runKeyOf, settingsFingerprint } from './shard-job.js';
import { FileRunStorage, type RunStorage, type ShardLayout } from './storage.js';

/** A planned run; release() gives up the folder's lock. */
export interface PlannedRun {
  descriptor: RunDescriptor;
  layout: ShardLayout;
  storage: RunStorage;
  manifest: Manifest;
  /** The count the run had before this plan grew it. */
  grewFrom?: number;
  release: () => Promise<void>;
}

/** A password in a queue URL stays out of the manifest's copy of the command line. */
function redactArgv(argv: readonly string[]): string[] {
  return argv.map((arg) => arg.replace(/^((?:--queue=)?rediss?:\/\/)[^@/]*@/, (_, scheme: string) => `${scheme}***@`));
}

/** Checks the flags, takes the folder's lock and writes or checks its manifest. Throws UsageErrors for flag problems. */
export async function planRun(flags: Flags, signal: AbortSignal): Promise<PlannedRun> {
  // The workers' device kind: --device names it; auto takes this machine's.
  const kind = (flags.device === 'auto' ? (runtimeInfo().cudaAvailable ? 'cuda' : 'cpu') : deviceKind(flags.device)) as RunDescriptor['device'];
  const models: Model[] = [];
  let checked;
  try {
    const run = await loadRun({ ...flags, device: 'cpu' }, signal, models);
    checked = { settings: { ...run.settings, ...deviceSettings(kind, flags.parallel) }, geometry: run.geometry, withLabels: run.withLabels };
  } finally {
    for (const model of models) model.dispose();
  }
  const opened = await openOutput({ ...flags, argv: redactArgv(flags.argv) }, checked.settings, bytesPerSample(flags.format, checked.geometry));
  try {
    if (flags.format !== 'npz') await mkdir(join(flags.out, PNG_DIR), { recursive: true });
    const storage = new FileRunStorage(flags.out);
    const fingerprint = settingsFingerprint(opened.manifest.settings);
    return {
      descriptor: {
        version: 1,
        runKey: runKeyOf(fingerprint, storage.location),
        fingerprint,
        location: storage.location,
        argv: portableArgv(flags),
        models: runModels(flags),
        device: kind,
      },
      layout: { plan: shardPlan(flags.count, flags.shardSize), format: flags.format, geometry: checked.geometry, withLabels: checked.withLabels },
      storage,
      manifest: opened.manifest,
      ...(opened.grewFrom === undefined ? {} : { grewFrom: opened.grewFrom }),
      release: opened.release,
    };
  } catch (error) {
    await opened.release();
    throw error;
  }
}
