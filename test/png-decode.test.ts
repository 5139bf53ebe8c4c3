/**
 * decodePng against PIL: PNG files of every color type, bit depth and
 * interlacing, written from fresh random samples (by PIL itself where it can
 * write the format, by test/reference/png_cases.py's plain writer where it
 * cannot), decoded by both and compared pixel for pixel. Then the refusals:
 * decompression bombs, images over the memory limit, cut-short and corrupt
 * files, each a TorchGuidanceError that says what is wrong.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { crc32, deflateSync } from 'node:zlib';

import { ErrorCodes, TorchGuidanceError, type ErrorCode } from '../src/core/errors.js';
import { resourceLimits, setResourceLimits } from '../src/core/limits.js';
import { decodePng } from '../src/image/png-decode.js';
import { python, repoRoot } from './helpers/python.js';
import { freshRandom, pick, uniformInt, type Rng } from './helpers/random.js';

interface PngCase {
  colorType: 0 | 2 | 3 | 4 | 6;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  interlaced: boolean;
  width: number;
  height: number;
  /** Samples per pixel interleaved, row-major. */
  samples: Uint16Array;
  /** RGB bytes of a palette image's PLTE. */
  palette?: Uint8Array;
  /** tRNS: [key] for gray, [r, g, b] for RGB, alpha values for a palette. */
  transparency?: number[];
  writer: 'pil' | 'direct';
  seed: number;
}

interface Reference {
  png: Buffer;
  channels: number;
  data: Buffer;
}

const SAMPLES = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const;
/** Every (color type, bit depth) the PNG spec allows. */
const FORMATS: [PngCase['colorType'], PngCase['bitDepth']][] = [
  [0, 1], [0, 2], [0, 4], [0, 8], [0, 16],
  [2, 8], [2, 16],
  [3, 1], [3, 2], [3, 4], [3, 8],
  [4, 8], [4, 16],
  [6, 8], [6, 16],
];
/** The formats PIL's encoder writes (never interlaced). */
const PIL_WRITES = new Set(['0/1', '0/8', '0/16', '2/8', '3/1', '3/2', '3/4', '3/8', '4/8', '6/8']);

function uniformIntBelow(rng: Rng, n: number): number {
  return Math.floor(rng.next() * n);
}

/**
 * A tRNS for gray or RGB: the key is some pixel's color, given to about a
 * quarter of the pixels; at 16 bits, others differ from it only in the
 * lowest bit, which a comparison after reducing to 8 bits would miss.
 */
function keyPixels(rng: Rng, c: PngCase): number[] {
  const spp = SAMPLES[c.colorType];
  const pixels = c.width * c.height;
  const key = Array.from(c.samples.subarray(0, spp));
  for (let p = 0; p < pixels; p++) {
    const roll = rng.next();
    if (roll < 0.25) c.samples.set(key, p * spp);
    else if (roll < 0.4 && c.bitDepth === 16) c.samples.set(key.map((v, i) => (i === spp - 1 ? v ^ 1 : v)), p * spp);
  }
  return key;
}

/** A case with fresh random samples (and palette, and tRNS when `keyed`). */
function randomCase(
  rng: Rng,
  [colorType, bitDepth]: (typeof FORMATS)[number],
  interlaced: boolean,
  keyed: boolean,
  writer: PngCase['writer'],
  size?: [number, number],
): PngCase {
  const [width, height] = size ?? [uniformInt(rng, 1, 37), uniformInt(rng, 1, 37)];
  const entries = colorType === 3 ? uniformInt(rng, 1, 1 << bitDepth) : 0;
  const limit = colorType === 3 ? entries : 2 ** bitDepth;
  const samples = Uint16Array.from({ length: width * height * SAMPLES[colorType] }, () => uniformIntBelow(rng, limit));
  const c: PngCase = { colorType, bitDepth, interlaced, width, height, samples, writer, seed: uniformIntBelow(rng, 2 ** 31) };
  if (colorType === 3) c.palette = Uint8Array.from({ length: 3 * entries }, () => uniformIntBelow(rng, 256));
  if (keyed && colorType === 3) {
    c.transparency = Array.from({ length: uniformInt(rng, 1, entries) }, () => pick(rng, [0, 255, uniformIntBelow(rng, 256)]));
  }
  if (keyed && colorType !== 3) c.transparency = keyPixels(rng, c);
  return c;
}

/** Writes and PIL-decodes the cases (test/reference/png_cases.py). */
function reference(cases: PngCase[]): Reference[] {
  const input = JSON.stringify(
    cases.map((c) => ({
      ...c,
      samples: Buffer.from(c.samples.buffer, c.samples.byteOffset, c.samples.byteLength).toString('base64'),
      palette: c.palette && Buffer.from(c.palette).toString('base64'),
    })),
  );
  const script = `${repoRoot}/test/reference/png_cases.py`;
  const output = execFileSync(python, [script], { input, encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = JSON.parse(output) as { png: string; channels: number; data: string }[];
  return out.map((r) => ({ png: Buffer.from(r.png, 'base64'), channels: r.channels, data: Buffer.from(r.data, 'base64') }));
}

function caseName(c: PngCase, seed: number): string {
  const key = c.transparency ? `, tRNS ${c.transparency.length}` : '';
  const layout = `${c.width}x${c.height}${c.interlaced ? ', interlaced' : ''}${key}`;
  return `color type ${c.colorType}, ${c.bitDepth}-bit, ${layout}, written by ${c.writer} (seed ${seed})`;
}

/** Decodes each reference file and compares with PIL's pixels. */
function compareWithPil(cases: PngCase[], seed: number): void {
  const references = reference(cases);
  cases.forEach((c, i) => {
    const what = caseName(c, seed);
    const expected = references[i]!;
    const image = decodePng(expected.png);
    assert.deepEqual([image.width, image.height, image.channels], [c.width, c.height, expected.channels], what);
    const got = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
    if (!got.equals(expected.data)) {
      const at = got.findIndex((v, k) => v !== expected.data[k]);
      assert.fail(`${what}: byte ${at} (pixel ${Math.floor(at / expected.channels)}) is ${got[at]}, PIL ${expected.data[at]}`);
    }
  });
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

function ihdr(width: number, height: number, bitDepth: number, colorType: number, interlace = 0): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data.set([bitDepth, colorType, 0, 0, interlace], 8);
  return chunk('IHDR', data);
}

/** A PNG from an IHDR, the chunks between it and IDAT, and the IDAT data. */
function png(header: Buffer, between: Buffer[], idat: Uint8Array): Buffer {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, header, ...between, chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]);
}

function expectError(code: ErrorCode, pattern: RegExp, run: () => unknown): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof TorchGuidanceError, `expected a TorchGuidanceError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('image: PNG decoding against PIL', () => {
  it('decodes every color type and bit depth, plain and Adam7, with and without tRNS, as PIL does', () => {
    const rng = freshRandom();
    const cases = FORMATS.flatMap((format) =>
      [false, true].flatMap((interlaced) => {
        const keyed = format[0] === 0 || format[0] === 2 || format[0] === 3 ? [false, true] : [false];
        return keyed.map((k) => randomCase(rng, format, interlaced, k, 'direct'));
      }),
    );
    compareWithPil(cases, rng.seed);
  });

  it('decodes the PNGs PIL writes itself, in every format it writes', () => {
    const rng = freshRandom();
    const cases = FORMATS.filter(([t, d]) => PIL_WRITES.has(`${t}/${d}`)).flatMap((format) => {
      const keyed = format[0] === 0 || format[0] === 2 || format[0] === 3 ? [false, true] : [false];
      return keyed.map((k) => randomCase(rng, format, false, k, 'pil'));
    });
    compareWithPil(cases, rng.seed);
  });

  it('places Adam7 passes right on every size from 1x1 to 9x9, sub-byte and 16-bit', () => {
    const rng = freshRandom();
    const cases: PngCase[] = [];
    for (let width = 1; width <= 9; width++) {
      for (let height = 1; height <= 9; height++) {
        cases.push(randomCase(rng, [3, 2], true, true, 'direct', [width, height]), randomCase(rng, [2, 16], true, false, 'direct', [width, height]));
      }
    }
    compareWithPil(cases, rng.seed);
  });
});

describe('image: PNG decoding refuses what it must', () => {
  it('refuses a decompression bomb once inflating passes the size the header implies', () => {
    // 1x1 gray: 2 bytes of scanlines, with 64 MiB of zeros deflated behind them.
    const bomb = png(ihdr(1, 1, 8, 0), [], deflateSync(Buffer.alloc(64 << 20)));
    assert.ok(bomb.length < 100_000);
    const started = performance.now();
    expectError(ErrorCodes.INVALID_ARGUMENT, /inflates to more than the 2 bytes a 1x1 8-bit gray image holds/, () => decodePng(bomb));
    assert.ok(performance.now() - started < 2000, 'inflating should stop early');
  });

  it('refuses an image over the memory limit from its header, before inflating anything', () => {
    // The image data is not even deflate: an error about it would mean it was inflated.
    const huge = png(ihdr(0x7fffffff, 0x7fffffff, 16, 6), [], Buffer.from('not deflate'));
    expectError(ErrorCodes.TOO_LARGE, /2147483647x2147483647 16-bit RGBA image needs about .* more than the memory limit/, () => decodePng(huge));
    const limits = resourceLimits();
    setResourceLimits({ memoryBytes: 1 << 20 });
    try {
      const scanlines = Buffer.alloc(1000 * (1000 * 4 + 1));
      expectError(ErrorCodes.TOO_LARGE, /1000x1000 8-bit RGBA image/, () => decodePng(png(ihdr(1000, 1000, 8, 6), [], deflateSync(scanlines))));
    } finally {
      setResourceLimits(limits);
    }
  });

  it('refuses every cut-short copy of a file, and every file with one byte changed, with a typed error', () => {
    const rng = freshRandom();
    const [file] = reference([randomCase(rng, [3, 4], true, true, 'direct', [uniformInt(rng, 3, 9), uniformInt(rng, 3, 9)])]).map((r) => r.png);
    for (let length = 0; length < file!.length; length++) {
      expectError(ErrorCodes.INVALID_ARGUMENT, /not a PNG|truncated/, () => decodePng(file!.subarray(0, length)));
    }
    for (let at = 0; at < file!.length; at++) {
      const changed = Buffer.from(file!);
      changed[at] = changed[at]! ^ (1 << uniformIntBelow(rng, 8));
      expectError(ErrorCodes.INVALID_ARGUMENT, /decodePng: /, () => decodePng(changed));
    }
  });

  it('names what is wrong with scanlines, palettes and tRNS chunks whose CRCs are right', () => {
    const gray = ihdr(2, 1, 8, 0);
    expectError(ErrorCodes.INVALID_ARGUMENT, /inflates to 2 bytes; a 2x1 8-bit gray image needs 3/, () => decodePng(png(gray, [], deflateSync(Buffer.from([0, 7])))));
    expectError(ErrorCodes.INVALID_ARGUMENT, /corrupt image data/, () => decodePng(png(gray, [], deflateSync(Buffer.from([0, 7, 9])).subarray(0, 6))));
    expectError(ErrorCodes.INVALID_ARGUMENT, /row 0 has unknown filter type 5/, () => decodePng(png(gray, [], deflateSync(Buffer.from([5, 7, 9])))));
    const adam7 = deflateSync(Buffer.from([0, 1, 9, 2, 0, 3, 4])); // 2x2: a pixel in passes 1 and 6, two in pass 7
    expectError(ErrorCodes.INVALID_ARGUMENT, /row 0 of Adam7 pass 6 has unknown filter type 9/, () => decodePng(png(ihdr(2, 2, 8, 0, 1), [], adam7)));
    expectError(ErrorCodes.INVALID_ARGUMENT, /color type 2 \(RGB\) cannot have bit depth 4/, () => decodePng(png(ihdr(2, 1, 4, 2), [], Buffer.alloc(0))));
    expectError(ErrorCodes.INVALID_ARGUMENT, /unknown color type 5/, () => decodePng(png(ihdr(2, 1, 8, 5), [], Buffer.alloc(0))));
    const scanline = deflateSync(Buffer.from([0, 0x13]));
    const palette = ihdr(2, 1, 4, 3);
    expectError(ErrorCodes.INVALID_ARGUMENT, /without a PLTE chunk/, () => decodePng(png(palette, [], scanline)));
    const twoColors = chunk('PLTE', Buffer.from([1, 2, 3, 4, 5, 6]));
    expectError(ErrorCodes.INVALID_ARGUMENT, /palette index 3, but PLTE has 2 entries/, () => decodePng(png(palette, [twoColors], scanline)));
    expectError(ErrorCodes.INVALID_ARGUMENT, /PLTE has 5 bytes/, () => decodePng(png(palette, [chunk('PLTE', Buffer.alloc(5))], scanline)));
    expectError(ErrorCodes.INVALID_ARGUMENT, /tRNS has 3 alpha values for a palette of 2 entries/, () =>
      decodePng(png(palette, [twoColors, chunk('tRNS', Buffer.alloc(3))], scanline)),
    );
    const grayScanline = deflateSync(Buffer.from([0, 7, 9]));
    expectError(ErrorCodes.INVALID_ARGUMENT, /tRNS of a gray image has 1 bytes, expected 2/, () => decodePng(png(gray, [chunk('tRNS', Buffer.alloc(1))], grayScanline)));
    expectError(ErrorCodes.INVALID_ARGUMENT, /unsupported critical chunk ABCD/, () => decodePng(png(gray, [chunk('ABCD', Buffer.alloc(1))], grayScanline)));
  });

  it('reads the two palette entries of a 1-bit image with partial alpha exactly', () => {
    const between = [chunk('PLTE', Buffer.from([10, 20, 30, 40, 50, 60])), chunk('tRNS', Buffer.from([128]))];
    const file = png(ihdr(3, 1, 1, 3), between, deflateSync(Buffer.from([0, 0b01000000])));
    const image = decodePng(file);
    assert.deepEqual([image.channels, ...image.data], [4, 10, 20, 30, 128, 40, 50, 60, 255, 10, 20, 30, 128]);
  });
});
