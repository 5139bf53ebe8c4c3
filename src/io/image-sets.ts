/**
 * Reads a set of 8-bit images (and the labels they were sampled for, when
 * stored) from what `torch-guidance sample` writes or from common dataset
 * files, for evaluation:
 *
 *   DIR            a sample run: its samples.npz, else its png/ files in name order
 *   FILE.npz       uint8 images under arr_0, [N, H, W] or [N, H, W, C] with C = 1, 3, 4,
 *                  and int64 labels under arr_1 (optional; -1 = no label), as numpy.savez
 *                  and the guided-diffusion evaluator use
 *   anything else  an IDX image file (MNIST-style, gzipped or not), [N, H, W]
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { ErrorCodes, TorchGuidanceError } from '../errors.js';
import type { UInt8Batch } from '../image/from-tensor.js';
import { decodePng } from '../image/png.js';
import { parseIdx } from './idx.js';
import { NpzFormatError, readNpzData, readNpzEntries, type NpzEntry } from './npz.js';
import { MERGED, PNG_DIR, isDirectory } from './shards.js';

/** Images read by {@link readImageSet}, with their labels when the file has them. */
export interface ImageSet {
  images: UInt8Batch;
  /** The class each image was asked for (null: none), when the file stores them. */
  labels?: (number | null)[];
  /** The file or directory actually read. */
  source: string;
}

function invalid(path: string, why: string): TorchGuidanceError {
  return new TorchGuidanceError(
    ErrorCodes.INVALID_ARGUMENT,
    `${path}: ${why}. Fix: give a sample run's directory, an .npz with uint8 images [N, H, W(, C)] under arr_0, or an IDX image file.`,
  );
}

async function entryBytes(path: string, entry: NpzEntry): Promise<Uint8Array> {
  const out = new Uint8Array(entry.dataBytes);
  let offset = 0;
  for await (const chunk of readNpzData(path, entry)) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

async function readNpzSet(path: string): Promise<ImageSet> {
  let entries: NpzEntry[];
  try {
    entries = await readNpzEntries(path);
  } catch (error) {
    if (error instanceof NpzFormatError) throw invalid(path, `not a readable .npz (${error.message}; numpy.savez_compressed archives are not read: use numpy.savez)`);
    throw error;
  }
  const imagesEntry = entries.find((e) => e.name === 'arr_0');
  if (!imagesEntry || imagesEntry.dtype !== 'uint8') throw invalid(path, 'no uint8 arr_0');
  const [count, height, width, channels = 1] = imagesEntry.shape;
  if (imagesEntry.shape.length < 3 || imagesEntry.shape.length > 4 || ![1, 3, 4].includes(channels)) {
    throw invalid(path, `arr_0 has shape [${imagesEntry.shape.join(', ')}], not [N, H, W] or [N, H, W, C] with C = 1, 3 or 4`);
  }
  const images: UInt8Batch = { count: count!, height: height!, width: width!, channels: channels as 1 | 3 | 4, data: await entryBytes(path, imagesEntry) };
  const labelsEntry = entries.find((e) => e.name === 'arr_1');
  if (!labelsEntry) return { images, source: path };
  if (labelsEntry.dtype !== 'int64' || labelsEntry.shape.length !== 1 || labelsEntry.shape[0] !== count) {
    throw invalid(path, `arr_1 should hold ${count} int64 labels; it is ${labelsEntry.dtype} [${labelsEntry.shape.join(', ')}]`);
  }
  const bytes = await entryBytes(path, labelsEntry);
  const values = new BigInt64Array(bytes.buffer, bytes.byteOffset, count);
  return { images, labels: Array.from(values, (v) => (v < 0n ? null : Number(v))), source: path };
}

async function readPngDir(dir: string): Promise<ImageSet> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  if (names.length === 0) throw invalid(dir, 'no PNG files');
  const first = decodePng(await readFile(join(dir, names[0]!)));
  const plane = first.width * first.height * first.channels;
  const data = new Uint8Array(names.length * plane);
  for (const [i, name] of names.entries()) {
    const image = i === 0 ? first : decodePng(await readFile(join(dir, name)));
    if (image.width !== first.width || image.height !== first.height || image.channels !== first.channels) {
      throw invalid(join(dir, name), `is ${image.channels}×${image.height}×${image.width}, the first PNG ${first.channels}×${first.height}×${first.width}`);
    }
    data.set(image.data, i * plane);
  }
  return { images: { count: names.length, height: first.height, width: first.width, channels: first.channels as 1 | 3 | 4, data }, source: dir };
}

/**
 * Reads 8-bit images from a `torch-guidance sample` run directory
 * (`samples.npz`, else `png/`), an `.npz` with uint8 images under `arr_0`
 * (labels under `arr_1`), or an IDX image file (gzipped or not).
 */
export async function readImageSet(path: string): Promise<ImageSet> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${path}: no such file or directory. Fix: check the path.`);
  }
  if (info.isDirectory()) {
    const merged = join(path, MERGED);
    if (await stat(merged).then(() => true, () => false)) return readNpzSet(merged);
    const pngs = join(path, PNG_DIR);
    if (await isDirectory(pngs)) return readPngDir(pngs);
    throw invalid(path, `a directory without ${MERGED} or ${PNG_DIR}/ (is the run finished?)`);
  }
  if (path.endsWith('.npz')) return readNpzSet(path);
  let idx;
  try {
    idx = parseIdx(await readFile(path), path);
  } catch (error) {
    throw invalid(path, `neither .npz nor an IDX image file (${(error as Error).message})`);
  }
  if (idx.shape.length !== 3) throw invalid(path, `an IDX file of shape [${idx.shape.join(', ')}], not images [N, H, W]`);
  const [count, height, width] = idx.shape as [number, number, number];
  return { images: { count, height, width, channels: 1, data: idx.data }, source: path };
}
