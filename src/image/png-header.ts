/**
 * What a PNG's IHDR says and what follows from it: the pixel format (color
 * type and bit depth, PNG spec 11.2.2) and the layout of the scanlines that
 * the image data inflates to, one pass for a plain image and seven for Adam7
 * interlacing (spec 8.2). The decoder sizes everything from here before it
 * inflates a byte.
 */
import { badPng } from './png-chunks.js';

/** The fields of IHDR that matter once it is known to be valid. */
export interface PngHeader {
  width: number;
  height: number;
  /** Bits per sample: 1, 2, 4, 8 or 16, as the color type allows. */
  bitDepth: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA. */
  colorType: number;
  interlaced: boolean;
}

/** One pass of the scanline data: which pixels it holds and how many bytes its rows take. */
export interface PngPass {
  /** The Adam7 pass number, 1..7 (1 for a plain image), for messages. */
  number: number;
  /** The pass's first pixel column and row in the image, and the spacing of its pixels. */
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  /** Pixels per row and rows in this pass. */
  width: number;
  height: number;
  /** Bytes of one row after its filter-type byte. */
  rowBytes: number;
}

const COLOR_TYPES: Record<number, { name: string; samples: number; depths: readonly number[] }> = {
  0: { name: 'gray', samples: 1, depths: [1, 2, 4, 8, 16] },
  2: { name: 'RGB', samples: 3, depths: [8, 16] },
  3: { name: 'palette', samples: 1, depths: [1, 2, 4, 8] },
  4: { name: 'gray + alpha', samples: 2, depths: [8, 16] },
  6: { name: 'RGBA', samples: 4, depths: [8, 16] },
};

/** Adam7: each pass's first column and row, then its column and row spacing. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Parses and validates IHDR's 13 bytes. */
export function parseHeader(data: Uint8Array): PngHeader {
  if (data.length !== 13) badPng(`IHDR has ${data.length} bytes, expected 13`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const width = view.getUint32(0);
  const height = view.getUint32(4);
  const [bitDepth, colorType, compression, filterMethod, interlace] = [data[8]!, data[9]!, data[10]!, data[11]!, data[12]!];
  const kind = COLOR_TYPES[colorType];
  if (kind === undefined) badPng(`unknown color type ${colorType} (PNG has 0, 2, 3, 4 and 6)`);
  if (!kind.depths.includes(bitDepth)) {
    badPng(`color type ${colorType} (${kind.name}) cannot have bit depth ${bitDepth}; it allows ${kind.depths.join(', ')}`);
  }
  if (compression !== 0 || filterMethod !== 0) badPng(`unknown compression ${compression} / filter method ${filterMethod}`);
  if (interlace > 1) badPng(`unknown interlace method ${interlace}`);
  if (width === 0 || height === 0) badPng(`zero-sized image ${width}x${height}`);
  if (width > 0x7fffffff || height > 0x7fffffff) badPng(`image size ${width}x${height} is over the 2^31-1 the PNG format allows`);
  return { width, height, bitDepth, colorType, interlaced: interlace === 1 };
}

/** Samples per pixel of the header's color type: 1 to 4. */
export function samplesPerPixel(header: PngHeader): number {
  return COLOR_TYPES[header.colorType]!.samples;
}

/** The header in words, for messages: "40x30 16-bit RGB, interlaced". */
export function describeHeader(header: PngHeader): string {
  const name = COLOR_TYPES[header.colorType]!.name;
  return `${header.width}x${header.height} ${header.bitDepth}-bit ${name}${header.interlaced ? ', interlaced' : ''}`;
}

/**
 * The passes whose rows the image data holds, in order. Passes with no
 * pixels (a narrow or short image under Adam7) are left out: the spec gives
 * them no rows, not even filter-type bytes.
 */
export function scanlinePasses(header: PngHeader): PngPass[] {
  const bitsPerPixel = samplesPerPixel(header) * header.bitDepth;
  const grids = header.interlaced ? ADAM7 : ([[0, 0, 1, 1]] as const);
  const passes: PngPass[] = [];
  for (const [index, [x0, y0, dx, dy]] of grids.entries()) {
    const width = Math.ceil(Math.max(0, header.width - x0) / dx);
    const height = Math.ceil(Math.max(0, header.height - y0) / dy);
    if (width === 0 || height === 0) continue;
    passes.push({ number: index + 1, x0, y0, dx, dy, width, height, rowBytes: Math.ceil((width * bitsPerPixel) / 8) });
  }
  return passes;
}

/** Bytes the image data inflates to: every pass's rows, each with its filter-type byte. */
export function scanlineBytes(passes: readonly PngPass[]): number {
  return passes.reduce((sum, pass) => sum + pass.height * (pass.rowBytes + 1), 0);
}

/** Bytes per complete pixel for the filters' "left" neighbour: at least 1, even below 8 bits per pixel (spec 9.2). */
export function filterBytesPerPixel(header: PngHeader): number {
  return Math.max(1, (samplesPerPixel(header) * header.bitDepth) >> 3);
}
