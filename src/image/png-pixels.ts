/**
 * Turns unfiltered scanlines of any PNG pixel format into the 8-bit pixels
 * of a RasterImage. What comes out (decodePng documents it for callers):
 *
 * - channels: gray 1, RGB 3, palette 3, and 4 (RGBA) whenever the file has
 *   alpha: gray + alpha (gray copied to R, G and B), RGBA, or a tRNS chunk
 *   (a palette's alpha table, or a gray or RGB color key: pixels equal to the
 *   key get alpha 0, all others 255);
 * - gray below 8 bits is scaled to span 0..255 (1 bit x255, 2 bits x85,
 *   4 bits x17), as the spec intends;
 * - 16-bit samples become round(v * 255 / 65535), the nearest 8-bit value.
 *   PIL and libpng's strip_16 keep the high byte instead, which is off by
 *   one level for about a quarter of all values, in either direction. A color
 *   key is compared at full 16-bit precision, before any of this.
 */
import { badPng } from './png-chunks.js';
import { type PngHeader, samplesPerPixel } from './png-header.js';

/**
 * Converts `count` pixels of one unfiltered row into `out`: the first pixel
 * at byte `offset`, each next one `step` bytes further (further than the
 * channel count for the sparse rows of an Adam7 pass).
 */
export type RowConverter = (row: Uint8Array, count: number, out: Uint8Array, offset: number, step: number) => void;

/** How a header's pixels map to output channels. */
export interface PixelConversion {
  channels: 1 | 3 | 4;
  convert: RowConverter;
}

/** Reads `count` samples of `depth` bits from a row into `into` (big-endian, most significant bits first, as PNG packs them). */
function readSamples(row: Uint8Array, count: number, depth: number, into: Uint16Array): void {
  if (depth === 8) {
    into.set(row.subarray(0, count));
  } else if (depth === 16) {
    for (let i = 0; i < count; i++) into[i] = (row[2 * i]! << 8) | row[2 * i + 1]!;
  } else {
    const perByte = 8 / depth;
    const mask = (1 << depth) - 1;
    for (let i = 0; i < count; i++) {
      const shift = 8 - depth * ((i % perByte) + 1);
      into[i] = (row[(i / perByte) | 0]! >> shift) & mask;
    }
  }
}

/** Sample value -> 8-bit value, for a bit depth. */
function toEightBits(depth: number): (v: number) => number {
  // (v + 128) / 257 truncated is round(v / 257) exactly: v / 257 never ends in .5.
  if (depth === 16) return (v) => ((v + 128) / 257) | 0;
  const scale = 255 / ((1 << depth) - 1);
  return (v) => v * scale;
}

/** The palette as RGBA, 256 entries so any index reads in bounds, and how many the file defines. */
function paletteTable(palette: Uint8Array | undefined, transparency: Uint8Array | undefined): { rgba: Uint8Array; entries: number } {
  if (palette === undefined) badPng('a palette image (color type 3) without a PLTE chunk');
  const entries = palette.length / 3;
  if (transparency !== undefined && transparency.length > entries) {
    badPng(`tRNS has ${transparency.length} alpha values for a palette of ${entries} entries`);
  }
  const rgba = new Uint8Array(256 * 4);
  for (let i = 0; i < entries; i++) {
    rgba.set(palette.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = transparency?.[i] ?? 255;
  }
  return { rgba, entries };
}

function paletteConversion(header: PngHeader, palette?: Uint8Array, transparency?: Uint8Array): PixelConversion {
  const { rgba, entries } = paletteTable(palette, transparency);
  const channels = outputChannels(header, transparency);
  const indices = new Uint16Array(header.width);
  const convert: RowConverter = (row, count, out, offset, step) => {
    readSamples(row, count, header.bitDepth, indices);
    for (let i = 0, o = offset; i < count; i++, o += step) {
      const index = indices[i]!;
      if (index >= entries) badPng(`a pixel uses palette index ${index}, but PLTE has ${entries} entries`);
      for (let c = 0; c < channels; c++) out[o + c] = rgba[4 * index + c]!;
    }
  };
  return { channels, convert };
}

/** The color key of a gray (1 sample) or RGB (3 samples) tRNS chunk. */
function colorKey(header: PngHeader, transparency: Uint8Array): Uint16Array {
  const samples = samplesPerPixel(header);
  if (transparency.length !== 2 * samples) {
    badPng(`tRNS of a ${header.colorType === 0 ? 'gray' : 'RGB'} image has ${transparency.length} bytes, expected ${2 * samples}`);
  }
  return Uint16Array.from({ length: samples }, (_, c) => (transparency[2 * c]! << 8) | transparency[2 * c + 1]!);
}

/** Output channel -> source sample, per color type without a key: gray, RGB, gray + alpha, RGBA. */
const SOURCES: Record<number, readonly number[]> = { 0: [0], 2: [0, 1, 2], 4: [0, 0, 0, 1], 6: [0, 1, 2, 3] };
/** The same with a color key, whose alpha the converter adds as the last channel. */
const KEYED_SOURCES: Record<number, readonly number[]> = { 0: [0, 0, 0], 2: [0, 1, 2] };

function directConversion(header: PngHeader, transparency?: Uint8Array): PixelConversion {
  const { colorType, bitDepth } = header;
  // tRNS is meaningless with an alpha channel (the spec forbids it there): ignored.
  const key = transparency !== undefined && (colorType === 0 || colorType === 2) ? colorKey(header, transparency) : undefined;
  const sources = key ? KEYED_SOURCES[colorType]! : SOURCES[colorType]!;
  const channels = outputChannels(header, transparency);
  const spp = samplesPerPixel(header);
  const samples = new Uint16Array(header.width * spp);
  const eight = toEightBits(bitDepth);
  const copies = bitDepth === 8 && !key && channels === spp;
  const convert: RowConverter = (row, count, out, offset, step) => {
    // 8-bit gray, RGB and RGBA are already the output bytes: one copy per row.
    if (copies && step === channels) return out.set(row.subarray(0, count * channels), offset);
    readSamples(row, count * spp, bitDepth, samples);
    for (let i = 0, s = 0, o = offset; i < count; i++, s += spp, o += step) {
      for (let c = 0; c < sources.length; c++) out[o + c] = eight(samples[s + sources[c]!]!);
      if (!key) continue;
      let match = true;
      for (let c = 0; c < spp; c++) match &&= samples[s + c] === key[c];
      out[o + 3] = match ? 0 : 255;
    }
  };
  return { channels, convert };
}

/** The output's channel count for `header`: see the top of this file. */
export function outputChannels(header: PngHeader, transparency?: Uint8Array): 1 | 3 | 4 {
  if (header.colorType === 4 || header.colorType === 6 || transparency !== undefined) return 4;
  return header.colorType === 0 ? 1 : 3;
}

/**
 * The output channels and row converter for `header`, given the file's PLTE
 * and tRNS data (undefined when absent); throws when they do not fit it.
 */
export function pixelConversion(header: PngHeader, palette?: Uint8Array, transparency?: Uint8Array): PixelConversion {
  return header.colorType === 3 ? paletteConversion(header, palette, transparency) : directConversion(header, transparency);
}
