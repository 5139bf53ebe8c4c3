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

import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from '../core/errors.js';
import type { UInt8Batch } from '../image/from-tensor.js';
import { decodePng } from '../image/png-decode.js';
import type { RasterImage } from '../image/raster.js';
import { checkMemory } from '../core/limits.js';
import { readIdx } from './idx.js';
import { ioError, isSystemError } from '../core/io-error.js';
import { NpzFormatError, readNpzData, readNpzEntries, type NpzEntry } from './npz.js';
import { MERGED, PNG_DIR, isDirectory } from './shards.js';

/** What the caller will accept, checked against each file's declared sizes before its data is read. */
export interface ImageSetOptions {
  /** The height and width the images must have, and whose they are (an evaluation classifier's input, for messages). */
  size?: { channels: number; height: number; width: number; takenBy: string };
}

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

/** Refuses declared images of another size than the caller takes, before reading them. */
function checkSize(path: string, channels: number, height: number, width: number, options: ImageSetOptions): void {
  const size = options.size;
  if (size && (height !== size.height || width !== size.width)) {
    throw new TorchGuidanceError(
      ErrorCodes.INPUT_SHAPE,
      `${size.takenBy} takes ${size.channels}×${size.height}×${size.width} images; got ${channels}×${height}×${width} in ${path} (nothing more was read). ` +
        'Fix: evaluate samples of the size the classifier was trained on.',
    );
  }
}

async function readNpzSet(path: string, options: ImageSetOptions): Promise<ImageSet> {
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
  // The sizes the archive declares, checked before a byte of them is read.
  checkSize(path, channels, height!, width!, options);
  const labelsBytes = entries.find((e) => e.name === 'arr_1')?.dataBytes ?? 0;
  checkMemory(
    imagesEntry.dataBytes + labelsBytes,
    `${path} (arr_0 declares ${imagesEntry.shape.join('x')} images)`,
    'evaluate fewer or smaller images',
    ErrorCodes.TOO_LARGE,
  );
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

/** A PNG's bytes, refused before reading when the file is larger than the memory limit allows. */
async function readPngFile(path: string): Promise<Buffer> {
  checkMemory((await stat(path)).size, path, 'use smaller PNG files', ErrorCodes.TOO_LARGE);
  return readFile(path);
}

/**
 * The PNG without its alpha channel: the metrics see colour only, and alpha
 * is dropped as the reference tools do (PIL's convert('RGB') before FID).
 */
function opaque(image: RasterImage): RasterImage {
  if (image.channels !== 4) return image;
  const pixels = image.width * image.height;
  const data = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) data.set(image.data.subarray(p * 4, p * 4 + 3), p * 3);
  return { width: image.width, height: image.height, channels: 3, data };
}

async function readPngDir(dir: string, options: ImageSetOptions): Promise<ImageSet> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  if (names.length === 0) throw invalid(dir, 'no PNG files');
  const first = opaque(decodePng(await readPngFile(join(dir, names[0]!))));
  checkSize(join(dir, names[0]!), first.channels, first.height, first.width, options);
  const plane = first.width * first.height * first.channels;
  checkMemory(names.length * plane, `${dir} (${names.length} PNGs of ${first.width}x${first.height}x${first.channels})`, 'evaluate fewer images', ErrorCodes.TOO_LARGE);
  const data = new Uint8Array(names.length * plane);
  for (const [i, name] of names.entries()) {
    const image = i === 0 ? first : opaque(decodePng(await readPngFile(join(dir, name))));
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
 * (labels under `arr_1`), or an IDX image file (gzipped or not). Every size a
 * file declares is checked against the memory limit before it is read
 * (ERR_TOO_LARGE); a bad file is ERR_INVALID_ARGUMENT, a file-system failure
 * ERR_IO.
 */
export async function readImageSet(path: string, options: ImageSetOptions = {}): Promise<ImageSet> {
  try {
    return await readImageSetOrThrow(path, options);
  } catch (error) {
    throw ioError(error, 'reading images', path);
  }
}

async function readImageSetOrThrow(path: string, options: ImageSetOptions): Promise<ImageSet> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${path}: no such file or directory. Fix: check the path.`);
  }
  if (info.isDirectory()) {
    const merged = join(path, MERGED);
    if (await stat(merged).then(() => true, () => false)) return readNpzSet(merged, options);
    const pngs = join(path, PNG_DIR);
    if (await isDirectory(pngs)) return readPngDir(pngs, options);
    // Not a run of ours: a folder of PNGs written by another tool.
    if ((await readdir(path)).some((name) => name.endsWith('.png'))) return readPngDir(path, options);
    throw invalid(path, `a directory without ${MERGED}, ${PNG_DIR}/ or PNG files (is the run finished?)`);
  }
  if (path.endsWith('.npz')) return readNpzSet(path, options);
  let idx;
  try {
    idx = await readIdx(path, (shape) => {
      if (shape.length === 3) checkSize(path, 1, shape[1]!, shape[2]!, options);
    });
  } catch (error) {
    if (isTorchGuidanceError(error)) throw error;
    if (isSystemError(error)) throw error;
    throw invalid(path, `neither .npz nor an IDX image file (${(error as Error).message})`);
  }
  if (idx.shape.length !== 3) throw invalid(path, `an IDX file of shape [${idx.shape.join(', ')}], not images [N, H, W]`);
  const [count, height, width] = idx.shape as [number, number, number];
  return { images: { count, height, width, channels: 1, data: idx.data }, source: path };
}
