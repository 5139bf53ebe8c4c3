/**
 * A dependency-free PNG codec for the images this package produces (samples,
 * comparison grids, heatmaps): 8-bit gray, RGB and RGBA, non-interlaced.
 * node:zlib does the deflating; everything else (chunks, CRC, filters) is here
 * so that saving a picture never needs a native image library.
 */
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { deflateSync, inflateSync } from 'node:zlib';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { ioError } from '../core/io-error.js';
import { checkMemory } from '../core/limits.js';

/** 8-bit pixels, row-major HWC: `data[(y * width + x) * channels + c]`. */
export interface RasterImage {
  width: number;
  height: number;
  /** 1 gray, 3 RGB, 4 RGBA (alpha not premultiplied). */
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

/**
 * Throws unless `image` is a well-formed RasterImage (positive integer sizes,
 * a supported channel count, exactly width*height*channels bytes). Every
 * function taking a RasterImage calls this first, so a bad image fails where
 * it enters rather than as a garbled picture.
 */
export function checkRaster(image: RasterImage, what = 'image'): void {
  const { width, height, channels, data } = image;
  const fail = (why: string) => {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${what}: ${why}`);
  };
  if (!Number.isInteger(width) || width <= 0 || width > 0x7fffffff) fail(`width must be a positive integer, got ${width}`);
  if (!Number.isInteger(height) || height <= 0 || height > 0x7fffffff) fail(`height must be a positive integer, got ${height}`);
  if (channels !== 1 && channels !== 3 && channels !== 4) fail(`channels must be 1, 3 or 4, got ${String(channels)}`);
  if (!(data instanceof Uint8Array)) fail('data must be a Uint8Array');
  if (data.length !== width * height * channels) {
    fail(`data has ${data.length} bytes; ${width}x${height}x${channels} needs ${width * height * channels}`);
  }
}

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

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COLOR_TYPE = { 1: 0, 3: 2, 4: 6 } as const;
const CHANNELS_OF_COLOR_TYPE: Record<number, 1 | 3 | 4> = { 0: 1, 2: 3, 6: 4 };

/** CRC-32 (ISO 3309, polynomial 0xEDB88320) table, built once at load. */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of `bytes`, as PNG chunks carry it (over chunk type + data). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/**
 * Writes row `row` (raw bytes) filtered with `type` into `out` (without the
 * leading filter-type byte). `prev` is the previous raw row, zeros for row 0.
 */
function filterRow(type: 0 | 1 | 2 | 3 | 4, row: Uint8Array, prev: Uint8Array, bpp: number, out: Uint8Array): void {
  for (let i = 0; i < row.length; i++) {
    const x = row[i]!;
    const a = i >= bpp ? row[i - bpp]! : 0;
    const b = prev[i]!;
    const c = i >= bpp ? prev[i - bpp]! : 0;
    let predicted: number;
    switch (type) {
      case 0: predicted = 0; break;
      case 1: predicted = a; break;
      case 2: predicted = b; break;
      case 3: predicted = (a + b) >>> 1; break;
      case 4: predicted = paeth(a, b, c); break;
    }
    out[i] = (x - predicted) & 0xff;
  }
}

/** Sum of |filtered bytes read as int8|: the spec's filter-choice heuristic. */
function cost(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum += bytes[i]! < 128 ? bytes[i]! : 256 - bytes[i]!;
  return sum;
}

/** Encodes `image` as an 8-bit PNG (gray, RGB or RGBA by its channel count). */
export function encodePng(image: RasterImage, options: EncodePngOptions = {}): Buffer {
  checkRaster(image);
  const { width, height, channels, data } = image;
  const filter = options.filter ?? 'adaptive';
  if (filter !== 'adaptive' && ![0, 1, 2, 3, 4].includes(filter)) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `PNG filter must be 0..4 or 'adaptive', got ${String(filter)}`);
  }
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1));
  const zeros = new Uint8Array(stride);
  const candidates = filter === 'adaptive' ? ([0, 1, 2, 3, 4] as const).map(() => new Uint8Array(stride)) : [];
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
    for (const type of [0, 1, 2, 3, 4] as const) {
      filterRow(type, row, prev, channels, candidates[type]!);
      const c = cost(candidates[type]!);
      if (c < bestCost) [best, bestCost] = [type, c];
    }
    raw[at] = best;
    raw.set(candidates[best]!, at + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[channels];
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: options.level ?? 6 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

function bad(why: string): never {
  throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `decodePng: ${why}`);
}

/**
 * Decodes an 8-bit, non-interlaced gray, RGB or RGBA PNG, with any of the 5
 * filter types, checking every chunk's CRC. Anything else (palette, 16-bit,
 * gray+alpha, interlaced, corrupt) throws an error that says what it found.
 * Ancillary chunks (gamma, text, tRNS, ...) are ignored.
 */
export function decodePng(buf: Uint8Array): RasterImage {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(SIGNATURE)) bad('not a PNG file (bad signature)');
  let pos = 8;
  let header: { width: number; height: number; channels: 1 | 3 | 4 } | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  while (!ended) {
    if (pos + 12 > bytes.length) bad(`truncated file: chunk header expected at byte ${pos}`);
    const length = bytes.readUInt32BE(pos);
    const type = bytes.toString('latin1', pos + 4, pos + 8);
    if (pos + 12 + length > bytes.length) bad(`truncated ${type} chunk at byte ${pos}`);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    const stored = bytes.readUInt32BE(pos + 8 + length);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + length)) !== stored) bad(`CRC mismatch in ${type} chunk at byte ${pos}`);
    pos += 12 + length;
    if (header === undefined && type !== 'IHDR') bad(`first chunk is ${type}, expected IHDR`);
    switch (type) {
      case 'IHDR': {
        if (header !== undefined) bad('more than one IHDR chunk');
        if (length !== 13) bad(`IHDR has ${length} bytes, expected 13`);
        const width = data.readUInt32BE(0);
        const height = data.readUInt32BE(4);
        const [depth, colorType, compression, filterMethod, interlace] = [data[8]!, data[9]!, data[10]!, data[11]!, data[12]!];
        const channels = CHANNELS_OF_COLOR_TYPE[colorType];
        if (channels === undefined || depth !== 8) {
          bad(`unsupported format: color type ${colorType}, bit depth ${depth} (only 8-bit gray, RGB and RGBA are read)`);
        }
        if (interlace !== 0) bad('unsupported format: interlaced (Adam7) PNG');
        if (compression !== 0 || filterMethod !== 0) bad(`unknown compression ${compression} / filter method ${filterMethod}`);
        if (width === 0 || height === 0) bad(`zero-sized image ${width}x${height}`);
        header = { width, height, channels };
        break;
      }
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        ended = true;
        break;
      case 'PLTE': // a suggested palette for truecolor images: safe to ignore
        break;
      default:
        // Bit 5 of the first byte clear = critical chunk we would misrender without.
        if ((type.charCodeAt(0) & 0x20) === 0) bad(`unsupported critical chunk ${type}`);
    }
  }
  if (header === undefined) bad('no IHDR chunk');
  if (idat.length === 0) bad('no IDAT chunk');
  const { width, height, channels } = header;
  const stride = width * channels;
  // The header's size bounds what inflating may produce: a deflate bomb stops
  // there (and an image too large for the memory limit is refused before).
  const expected = height * (stride + 1);
  checkMemory(expected + height * stride, `decodePng: a ${width}x${height}x${channels} image`, 'use smaller images', ErrorCodes.TOO_LARGE);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch (error) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `decodePng: corrupt image data (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (raw.length !== height * (stride + 1)) {
    bad(`image data inflates to ${raw.length} bytes; ${width}x${height}x${channels} needs ${height * (stride + 1)}`);
  }
  const out = new Uint8Array(height * stride);
  const bpp = channels;
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    const up = dst - stride;
    for (let i = 0; i < stride; i++) {
      const x = raw[src + i]!;
      const a = i >= bpp ? out[dst + i - bpp]! : 0;
      const b = y > 0 ? out[up + i]! : 0;
      const c = i >= bpp && y > 0 ? out[up + i - bpp]! : 0;
      let predicted: number;
      switch (type) {
        case 0: predicted = 0; break;
        case 1: predicted = a; break;
        case 2: predicted = b; break;
        case 3: predicted = (a + b) >>> 1; break;
        case 4: predicted = paeth(a, b, c); break;
        default: return bad(`row ${y} has unknown filter type ${type}`);
      }
      out[dst + i] = (x + predicted) & 0xff;
    }
  }
  return { width, height, channels, data: out };
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
