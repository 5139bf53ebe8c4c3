/**
 * Reads PNG files as other tools write them: every color type and bit depth
 * of the PNG spec, palettes with their transparency, color keys and Adam7
 * interlacing, into the 8-bit RasterImage the rest of the package draws and
 * evaluates with. Sizes are checked against the memory limit from the header
 * before anything is inflated, and inflating stops at the size the header
 * implies, so a small file cannot make the decoder allocate more.
 */
import { constants as bufferConstants } from 'node:buffer';
import { inflateSync } from 'node:zlib';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { checkMemory } from '../core/limits.js';
import { badPng, readChunks } from './png-chunks.js';
import { unfilterRow } from './png-filters.js';
import { type PngHeader, type PngPass, describeHeader, filterBytesPerPixel, parseHeader, samplesPerPixel, scanlineBytes, scanlinePasses } from './png-header.js';
import { type RowConverter, outputChannels, pixelConversion } from './png-pixels.js';
import type { RasterImage } from './raster.js';

/** The chunks the decoder uses, gathered from the file. */
interface PngParts {
  header: PngHeader;
  palette?: Buffer;
  transparency?: Buffer;
  idat: Buffer[];
}

/** Walks the chunks (CRCs checked), keeping IHDR, PLTE, tRNS and the IDAT data, refusing critical chunks it cannot honour. */
function readParts(bytes: Buffer): PngParts {
  let header: PngHeader | undefined;
  let palette: Buffer | undefined;
  let transparency: Buffer | undefined;
  const idat: Buffer[] = [];
  for (const { type, data } of readChunks(bytes)) {
    if (header === undefined && type !== 'IHDR') badPng(`first chunk is ${type}, expected IHDR`);
    switch (type) {
      case 'IHDR':
        if (header !== undefined) badPng('more than one IHDR chunk');
        header = parseHeader(data);
        break;
      case 'PLTE':
        if (palette !== undefined) badPng('more than one PLTE chunk');
        if (idat.length > 0) badPng('PLTE chunk after the image data');
        if (data.length === 0 || data.length % 3 !== 0 || data.length > 256 * 3) {
          badPng(`PLTE has ${data.length} bytes; a palette is 1 to 256 entries of 3 bytes`);
        }
        palette = data;
        break;
      case 'tRNS':
        if (transparency !== undefined) badPng('more than one tRNS chunk');
        transparency = data;
        break;
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        break;
      default:
        // Bit 5 of the first byte clear = critical chunk we would misrender without.
        if ((type.charCodeAt(0) & 0x20) === 0) badPng(`unsupported critical chunk ${type}`);
    }
  }
  if (header === undefined) badPng('no IHDR chunk');
  if (idat.length === 0) badPng('no IDAT chunk');
  return { header, palette, transparency, idat };
}

/**
 * Refuses, from the header alone, an image whose decoding would need more
 * memory than the limit allows (the scanlines, the output and one row of
 * 16-bit samples), or a buffer larger than Node.js can make.
 */
function checkSizes(header: PngHeader, channels: number, scanlines: number, what: string): void {
  const output = header.width * header.height * channels;
  const bytesNeeded = scanlines + output + 2 * header.width * samplesPerPixel(header);
  checkMemory(bytesNeeded, `decodePng: a ${what} image`, 'use smaller images', ErrorCodes.TOO_LARGE);
  if (Math.max(scanlines, output) > bufferConstants.MAX_LENGTH) {
    throw new TorchGuidanceError(
      ErrorCodes.TOO_LARGE,
      `decodePng: a ${what} image needs a buffer of ${Math.max(scanlines, output)} bytes, more than Node.js allows (${bufferConstants.MAX_LENGTH}); nothing was allocated. Fix: use smaller images.`,
    );
  }
}

/** Inflates the image data to exactly `size` bytes, refusing more (a decompression bomb) and less (a cut-short file). */
function inflateScanlines(idat: Buffer[], size: number, what: string): Buffer {
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: size });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      badPng(`image data inflates to more than the ${size} bytes a ${what} image holds (a corrupt or hostile file); inflating stopped there`);
    }
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `decodePng: corrupt image data (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (raw.length !== size) badPng(`image data inflates to ${raw.length} bytes; a ${what} image needs ${size}`);
  return raw;
}

/** What every pass is decoded with. */
interface PassContext {
  /** The inflated scanlines, unfiltered in place. */
  raw: Buffer;
  image: RasterImage;
  /** Bytes per pixel for the filters. */
  bpp: number;
  convert: RowConverter;
  interlaced: boolean;
}

/**
 * Unfilters the rows of one pass in place (from byte `start` of the
 * scanlines) and converts them into the image. Returns where the next pass
 * starts.
 */
function decodePass(context: PassContext, start: number, pass: PngPass): number {
  const { raw, image, bpp, convert } = context;
  let prev: Uint8Array | undefined;
  let at = start;
  for (let r = 0; r < pass.height; r++, at += pass.rowBytes + 1) {
    const row = raw.subarray(at + 1, at + 1 + pass.rowBytes);
    if (!unfilterRow(raw[at]!, row, prev, bpp)) {
      badPng(`row ${r}${context.interlaced ? ` of Adam7 pass ${pass.number}` : ''} has unknown filter type ${raw[at]!}`);
    }
    const y = pass.y0 + r * pass.dy;
    convert(row, pass.width, image.data, (y * image.width + pass.x0) * image.channels, pass.dx * image.channels);
    prev = row;
  }
  return at;
}

/**
 * Decodes a PNG of any color type and bit depth, interlaced or not, checking
 * every chunk's CRC. The result has 8-bit channels: 1 for gray, 3 for RGB
 * and palette images, 4 (RGBA) when the file has alpha (an alpha channel, or
 * a tRNS chunk: a palette's alpha values or a gray or RGB color key, whose
 * pixels get alpha 0). Gray below 8 bits is scaled to 0..255; 16-bit samples
 * become round(v * 255 / 65535). Ancillary chunks other than tRNS (gamma,
 * color profiles, text) are ignored: the samples are returned as stored.
 *
 * A malformed file throws ERR_INVALID_ARGUMENT naming what is wrong (bad
 * signature, CRC mismatch, truncation, image data that inflates to more or
 * less than the header implies); an image too large for the memory limit
 * throws ERR_TOO_LARGE before anything is inflated.
 */
export function decodePng(buf: Uint8Array): RasterImage {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const { header, palette, transparency, idat } = readParts(bytes);
  const { width, height } = header;
  const channels = outputChannels(header, transparency);
  const passes = scanlinePasses(header);
  const size = scanlineBytes(passes);
  const what = describeHeader(header);
  checkSizes(header, channels, size, what);
  const { convert } = pixelConversion(header, palette, transparency);
  const raw = inflateScanlines(idat, size, what);
  const image: RasterImage = { width, height, channels, data: new Uint8Array(width * height * channels) };
  const context: PassContext = { raw, image, bpp: filterBytesPerPixel(header), convert, interlaced: header.interlaced };
  let at = 0;
  for (const pass of passes) at = decodePass(context, at, pass);
  return image;
}
