/**
 * The on-disk layout of a resumable batch run (torch-guidance sample --out):
 *
 *   manifest.json          the run's settings; a resume must match them
 *   shard-00000.npz ...    shard i: samples [i*K, (i+1)*K), arr_0 uint8 NHWC, arr_1 int64 labels
 *   png/00000000.png ...   one PNG per sample, named by its index in the run
 *   samples.npz            every shard merged, written once all shards exist
 *   .lock                  locked (flock) by the run writing here; holds its pid
 *
 * Every file is written atomically (src/io/atomic.ts), so a shard is either
 * whole or absent; a resume re-checks each shard (entries, shapes, CRCs,
 * PNG headers) and redoes any that is missing or incomplete.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { removeTempFiles, writeBytesAtomic } from './atomic.js';
import { type NpzArray, checkNpzCrc, readNpzData, readNpzEntries, writeNpz } from './npz.js';

export const MANIFEST = 'manifest.json';
export const MERGED = 'samples.npz';
export const PNG_DIR = 'png';
export { LOCK } from './run-lock.js';
const MANIFEST_VERSION = 1;
const TOOL = 'torch-guidance sample';

export type OutputFormat = 'png' | 'npz' | 'both';

export interface ShardPlan {
  count: number;
  shardSize: number;
  shards: number;
}

export function shardPlan(count: number, shardSize: number): ShardPlan {
  return { count, shardSize, shards: Math.ceil(count / shardSize) };
}

/** First sample index and sample count of shard `i`. */
export function shardRange(plan: ShardPlan, i: number): { first: number; n: number } {
  const first = i * plan.shardSize;
  return { first, n: Math.min(plan.shardSize, plan.count - first) };
}

export function shardFileName(i: number): string {
  return `shard-${String(i).padStart(5, '0')}.npz`;
}

/** The PNG of sample `index`, with at least 8 digits so names sort in sample order. */
export function pngFileName(index: number, count: number): string {
  return `${String(index).padStart(Math.max(8, String(count - 1).length), '0')}.png`;
}

// ---------------------------------------------------------------------------
// Manifest

export interface Manifest {
  version: number;
  tool: string;
  /** Everything that decides the output's bytes; a resume must give the same. */
  settings: Record<string, unknown>;
  /** Not compared on resume: paths as given, the command line. */
  info?: Record<string, unknown>;
  createdAt: string;
  completedAt?: string;
}

export async function readManifest(dir: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: Manifest;
  try {
    parsed = JSON.parse(text) as Manifest;
  } catch {
    throw new Error(`${join(dir, MANIFEST)} is not JSON, so not a torch-guidance manifest`);
  }
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.settings !== 'object' || parsed.tool !== TOOL) {
    throw new Error(`${join(dir, MANIFEST)} is not a torch-guidance manifest`);
  }
  return parsed;
}

export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await writeBytesAtomic(join(dir, MANIFEST), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
}

export function newManifest(settings: Record<string, unknown>): Manifest {
  return { version: MANIFEST_VERSION, tool: TOOL, settings, createdAt: new Date().toISOString() };
}

/** Dotted paths where two settings objects differ, with both values as JSON. */
export function settingsDiff(was: unknown, now: unknown, path = ''): { path: string; was: string; now: string }[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObject(was) && isObject(now) && Array.isArray(was) === Array.isArray(now)) {
    if (Array.isArray(was) && Array.isArray(now) && was.length !== now.length) {
      return [{ path: path || '(settings)', was: JSON.stringify(was), now: JSON.stringify(now) }];
    }
    const keys = [...new Set([...Object.keys(was), ...Object.keys(now)])];
    return keys.flatMap((k) => settingsDiff(was[k], now[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(was) === JSON.stringify(now) ? [] : [{ path: path || '(settings)', was: JSON.stringify(was) ?? 'absent', now: JSON.stringify(now) ?? 'absent' }];
}

// ---------------------------------------------------------------------------
// Lock: one writer per directory (src/io/run-lock.ts)

export { takeLock } from './run-lock.js';

// ---------------------------------------------------------------------------
// Validation

export interface ImageGeometry {
  height: number;
  width: number;
  channels: number;
}

/** Why the shard npz is not complete and well-formed, or undefined when it is. */
export async function checkShardNpz(path: string, n: number, geometry: ImageGeometry, withLabels: boolean): Promise<string | undefined> {
  try {
    const entries = await readNpzEntries(path);
    const images = entries.find((e) => e.name === 'arr_0');
    const expected = [n, geometry.height, geometry.width, geometry.channels];
    if (!images || images.dtype !== 'uint8' || images.shape.join() !== expected.join()) {
      return `arr_0 is ${images ? `${images.dtype} [${images.shape.join(', ')}]` : 'missing'}, expected uint8 [${expected.join(', ')}]`;
    }
    const labels = entries.find((e) => e.name === 'arr_1');
    if (withLabels && (!labels || labels.dtype !== 'int64' || labels.shape.join() !== String(n))) return `arr_1 (labels) is missing or not int64 [${n}]`;
    for (const entry of entries) {
      if (!(await checkNpzCrc(path, entry))) return `${entry.name} fails its CRC-32`;
    }
    return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return (error as Error).message;
  }
}

/**
 * Why the PNG is not a whole image of the right size, or undefined. Checks
 * the signature, IHDR and the IEND trailer, not every pixel: PNGs are
 * written atomically, so a present one is whole unless altered afterwards.
 */
export async function checkPngFile(path: string, geometry: ImageGeometry): Promise<string | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 57 || signature.some((b, i) => bytes[i] !== b) || bytes.toString('latin1', 12, 16) !== 'IHDR') return 'not a PNG';
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (width !== geometry.width || height !== geometry.height) return `is ${width}x${height}, expected ${geometry.width}x${geometry.height}`;
  if (bytes.toString('latin1', bytes.length - 8, bytes.length - 4) !== 'IEND') return 'truncated (no IEND)';
  return undefined;
}

export type ShardState = { status: 'complete' } | { status: 'absent' } | { status: 'partial'; problem: string };

/** Whether shard `i` is complete in `format`, absent (none of its files exist), or partial (and why). */
export async function checkShard(
  dir: string,
  plan: ShardPlan,
  i: number,
  format: OutputFormat,
  geometry: ImageGeometry,
  withLabels: boolean,
): Promise<ShardState> {
  const { first, n } = shardRange(plan, i);
  const problems: string[] = [];
  let present = 0;
  if (format !== 'png') {
    const problem = await checkShardNpz(join(dir, shardFileName(i)), n, geometry, withLabels);
    if (problem) problems.push(`${shardFileName(i)}: ${problem}`);
    if (problem !== 'missing') present++;
  }
  if (format !== 'npz') {
    let missing = 0;
    for (let k = first; k < first + n; k++) {
      const name = pngFileName(k, plan.count);
      const problem = await checkPngFile(join(dir, PNG_DIR, name), geometry);
      if (problem === 'missing') missing++;
      else if (problem) problems.push(`${PNG_DIR}/${name}: ${problem}`);
      if (problem !== 'missing') present++;
    }
    if (missing > 0) problems.push(`${missing} of its ${n} PNGs missing`);
  }
  if (problems.length === 0) return { status: 'complete' };
  return present === 0 ? { status: 'absent' } : { status: 'partial', problem: problems.join('; ') };
}

/** Whether `name` in a run's directory is a file the run writes (its temporary files stand in for these). */
export function isRunFile(name: string): boolean {
  return name === MANIFEST || name === MERGED || /^shard-\d{5,}\.npz$/.test(name);
}

/** Whether `name` in a run's png/ is one of its PNGs. */
export function isRunPng(name: string): boolean {
  return /^\d{8,}\.png$/.test(name);
}

/**
 * Removes temporary files an interrupted run left in the output directory
 * and its png/: only those standing in for files a run writes (a user's
 * file that merely looks like a temporary file stays).
 */
export async function cleanTemps(dir: string): Promise<string[]> {
  return [...(await removeTempFiles(dir, isRunFile)), ...(await removeTempFiles(join(dir, PNG_DIR), isRunPng)).map((n) => `${PNG_DIR}/${n}`)];
}

// ---------------------------------------------------------------------------
// Shards and the merged file

export function shardArrays(images: { data: Uint8Array; count: number } & ImageGeometry, labels: (number | null)[] | undefined): NpzArray[] {
  const arrays: NpzArray[] = [
    { name: 'arr_0', dtype: 'uint8', shape: [images.count, images.height, images.width, images.channels], data: images.data },
  ];
  if (labels) {
    // Unconditional samples (label null) are stored as -1.
    const values = BigInt64Array.from(labels.map((l) => BigInt(l ?? -1)));
    arrays.push({ name: 'arr_1', dtype: 'int64', shape: [labels.length], data: new Uint8Array(values.buffer) });
  }
  return arrays;
}

/** Writes the merged samples.npz from every shard, streaming (memory stays at one chunk). */
export async function mergeShards(dir: string, plan: ShardPlan, geometry: ImageGeometry, withLabels: boolean): Promise<void> {
  const names = Array.from({ length: plan.shards }, (_, i) => join(dir, shardFileName(i)));
  const entries = await Promise.all(names.map((p) => readNpzEntries(p)));
  async function* concat(key: string): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < names.length; i++) {
      const entry = entries[i]!.find((e) => e.name === key)!;
      yield* readNpzData(names[i]!, entry);
    }
  }
  const arrays: NpzArray[] = [
    { name: 'arr_0', dtype: 'uint8', shape: [plan.count, geometry.height, geometry.width, geometry.channels], data: concat('arr_0') },
  ];
  if (withLabels) arrays.push({ name: 'arr_1', dtype: 'int64', shape: [plan.count], data: concat('arr_1') });
  await writeNpz(join(dir, MERGED), arrays);
}

/** Why samples.npz is not the complete merge, or undefined. */
export async function checkMerged(dir: string, plan: ShardPlan, geometry: ImageGeometry, withLabels: boolean): Promise<string | undefined> {
  return checkShardNpz(join(dir, MERGED), plan.count, geometry, withLabels);
}

/** Whether `path` exists and is a directory; false when absent; throws when it is something else. */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
