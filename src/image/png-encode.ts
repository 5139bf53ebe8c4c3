/**
 * Writes the images this package produces (samples, comparison grids,
 * heatmaps) as 8-bit gray, RGB or RGBA PNGs, non-interlaced. node:zlib does
 * the deflating; chunks and filters are ours, so that saving a picture never
 * needs a native image library.
 */
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { ioError } from '../core/io-error.js';
import { PNG_SIGNATURE, writeChunk } from './png-chunks.js';
import { filterCost, filterRow } from './png-filters.js';
import { checkRaster, type RasterImage } from './raster.js';

/** PNG filter types (PNG spec 9.2); 'adaptive' picks one per row. */
export type PngFilter = 0 | 1 | 2 | 3 | 4 | 'adaptive';

/** Options of {@link encodePng} and {@link writePng}. */
export interface EncodePngOptions {
  /**
   * Row filter. Default 'adaptive': per row, the filter whose output has the
   * smallest sum of |signed bytes| (the heuristic the PNG spec recommends),
   * which keeps smooth images small. A fixed type is mostly for tests.
   */
  filter?: PngFilter;
  /** zlib level 0..9 (default 6). */
  level?: number;
}

const COLOR_TYPE = { 1: 0, 3: 2, 4: 6 } as const;
const FILTER_TYPES = [0, 1, 2, 3, 4] as const;

/** The filtered scanlines, each led by its filter-type byte, ready to deflate. */
function filteredRows(image: RasterImage, filter: PngFilter): Uint8Array {
  const { width, height, channels, data } = image;
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1));
  const zeros = new Uint8Array(stride);
  const candidates = filter === 'adaptive' ? FILTER_TYPES.map(() => new Uint8Array(stride)) : [];
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? data.subarray((y - 1) * stride, y * stride) : zeros;
    const at = y * (stride + 1);
    if (filter !== 'adaptive') {
      raw[at] = filter;
      filterRow(filter, row, prev, channels, raw.subarray(at + 1, at + 1 + stride));
      continue;
    }
    let best = 0;
    let bestCost = Infinity;
    for (const type of FILTER_TYPES) {
      filterRow(type, row, prev, channels, candidates[type]!);
      const c = filterCost(candidates[type]!);
      if (c < bestCost) [best, bestCost] = [type, c];
    }
    raw[at] = best;
    raw.set(candidates[best]!, at + 1);
  }
  return raw;
}

/** Encodes `image` as an 8-bit PNG (gray, RGB or RGBA by its channel count). */
export function encodePng(image: RasterImage, options: EncodePngOptions = {}): Buffer {
  checkRaster(image);
  const filter = options.filter ?? 'adaptive';
  if (filter !== 'adaptive' && !FILTER_TYPES.includes(filter)) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `PNG filter must be 0..4 or 'adaptive', got ${String(filter)}`);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(image.width, 0);
  ihdr.writeUInt32BE(image.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[image.channels];
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  return Buffer.concat([
    PNG_SIGNATURE,
    writeChunk('IHDR', ihdr),
    writeChunk('IDAT', deflateSync(filteredRows(image, filter), { level: options.level ?? 6 })),
    writeChunk('IEND', new Uint8Array(0)),
  ]);
}

/**
 * Encodes and writes `image` to `path` atomically: the bytes go to a sibling
 * temporary file that is then renamed over `path`, so a reader (or a crash
 * mid-write) never sees a half-written PNG.
 */
export async function writePng(path: string, image: RasterImage, options: EncodePngOptions = {}): Promise<void> {
  const bytes = encodePng(image, options);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw ioError(error, 'writing the PNG', path);
  }
}
