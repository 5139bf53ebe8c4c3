/**
 * The storage boundary of a queued run: everything a worker or the
 * coordinator does with a run's files goes through RunStorage, named by the
 * `location` string the jobs carry. Today that is a folder on a file system
 * every machine mounts at the same path (NFS, a cluster file system, one
 * machine's disk): FileRunStorage, the same layout and atomic writes as
 * `torch-guidance sample` (src/io/shards.ts), so a queued run and a local one
 * can resume each other.
 *
 * An object store fits behind the same interface (docs/distributed.md says
 * how): a shard object appears whole when its PUT completes, which is the
 * atomicity the rename gives here; openRunStorage() picks the implementation
 * by the location's scheme.
 */
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';

import { writeShard } from '../runs/shard-files.js';
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { UInt8Batch } from '../image/from-tensor.js';
import {
  type ImageGeometry,
  type Manifest,
  type OutputFormat,
  type ShardPlan,
  type ShardState,
  PNG_DIR,
  checkMerged,
  checkShard,
  cleanTemps,
  mergeShards,
  readManifest,
  shardRange,
} from '../io/shards.js';

/** What decides a run's file names and shapes. */
export interface ShardLayout {
  plan: ShardPlan;
  format: OutputFormat;
  geometry: ImageGeometry;
  withLabels: boolean;
}

/** One shard's samples, ready to store. */
export interface ShardData {
  batch: UInt8Batch;
  labels: (number | null)[] | undefined;
}

/** Where a run's files live, for workers (shards) and the coordinator (checks, merge). */
export interface RunStorage {
  /** The location as jobs name it. */
  readonly location: string;
  /** The run's manifest, or undefined when there is none (or the location cannot be seen from here). */
  readManifest(): Promise<Manifest | undefined>;
  /** Whether shard `i` is complete, absent or partial. */
  shardState(layout: ShardLayout, i: number): Promise<ShardState>;
  /** Stores shard `i` so that a reader sees each file whole or not at all. */
  writeShard(layout: ShardLayout, i: number, data: ShardData): Promise<void>;
  /** Removes what interrupted writers left (only when no writer can still be at work). */
  removeTemporaries(): Promise<string[]>;
  /** Why the merged samples.npz is not the complete merge, or undefined. */
  mergedProblem(layout: ShardLayout): Promise<string | undefined>;
  /** Writes the merged samples.npz from every shard. */
  merge(layout: ShardLayout): Promise<void>;
}

/** A run in a folder (local, or a shared file system mounted at the same path everywhere). */
export class FileRunStorage implements RunStorage {
  readonly location: string;

  constructor(dir: string) {
    this.location = dir;
  }

  readManifest(): Promise<Manifest | undefined> {
    return readManifest(this.location);
  }

  shardState(layout: ShardLayout, i: number): Promise<ShardState> {
    return checkShard(this.location, layout.plan, i, layout.format, layout.geometry, layout.withLabels);
  }

  async writeShard(layout: ShardLayout, i: number, data: ShardData): Promise<void> {
    if (layout.format !== 'npz') await mkdir(join(this.location, PNG_DIR), { recursive: true });
    const { first } = shardRange(layout.plan, i);
    await writeShard({ out: this.location, format: layout.format, count: layout.plan.count }, i, first, data.batch, data.labels);
  }

  removeTemporaries(): Promise<string[]> {
    return cleanTemps(this.location);
  }

  mergedProblem(layout: ShardLayout): Promise<string | undefined> {
    return checkMerged(this.location, layout.plan, layout.geometry, layout.withLabels);
  }

  merge(layout: ShardLayout): Promise<void> {
    return mergeShards(this.location, layout.plan, layout.geometry, layout.withLabels);
  }
}

/** The storage of a location: an absolute path (or a file: URL) is a folder; other schemes are not supported yet. */
export function openRunStorage(location: string): RunStorage {
  if (location.startsWith('file:')) return new FileRunStorage(new URL(location).pathname);
  if (isAbsolute(location)) return new FileRunStorage(location);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  throw new TorchGuidanceError(
    ErrorCodes.INVALID_OPTION,
    scheme
      ? `run location ${location}: ${scheme}:// storage is not supported; give a folder on a file system every worker mounts at the same path`
      : `run location ${location}: give an absolute folder path`,
  );
}
