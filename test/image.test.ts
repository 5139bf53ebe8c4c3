import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, inflateSync } from 'node:zlib';

import {
  ADVANCE,
  Canvas,
  GLYPH_HEIGHT,
  GLYPH_WIDTH,
  LINE_HEIGHT,
  MAGMA,
  VIRIDIS,
  colormapColor,
  decodePng,
  drawText,
  encodePng,
  glyphBitmap,
  heatmap,
  imageGrid,
  labelledRows,
  measureText,
  overlay,
  writePng,
  type Color,
  type RasterImage,
} from '../src/image/index.js';
import { readImageSet } from '../src/io/image-sets.js';
import { freshRandom, uniformInt, pick } from './helpers/random.js';

const PYTHON = '/usr/bin/python3';

/** Random bytes from crypto: fresh on every run. */
function randomImage(width: number, height: number, channels: 1 | 3 | 4): RasterImage {
  return { width, height, channels, data: new Uint8Array(randomBytes(width * height * channels)) };
}

/** The filter-type byte of every row of an 8-bit non-interlaced PNG, read independently of decodePng. */
function rowFilters(png: Buffer): number[] {
  let pos = 8;
  let width = 0;
  let height = 0;
  let bpp = 0;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const length = png.readUInt32BE(pos);
    const type = png.toString('latin1', pos + 4, pos + 8);
    const data = png.subarray(pos + 8, pos + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bpp = ({ 0: 1, 2: 3, 6: 4 } as Record<number, number>)[data[9]!]!;
    }
    if (type === 'IDAT') idat.push(data);
    pos += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  return Array.from({ length: height }, (_, y) => raw[y * (width * bpp + 1)]!);
}

interface PilEncode {
  op: 'encode';
  mode: string;
  width: number;
  height: number;
  data: Uint8Array;
  /** PIL tries the Average filter only with optimize=True. */
  optimize?: boolean;
}
interface PilDecode {
  op: 'decode';
  png: Buffer;
}
interface PilDecoded {
  mode: string;
  size: [number, number];
  data: string;
}

/**
 * PIL as the independent codec: encodes raw pixels to PNG (its own adaptive
 * filter choice), or verifies (CRCs, structure) and decodes a PNG.
 */
function pil(requests: (PilEncode | PilDecode)[]): (string | PilDecoded)[] {
  const script = `
import base64, io, json, sys
from PIL import Image
out = []
for item in json.load(sys.stdin):
    if item['op'] == 'encode':
        im = Image.frombytes(item['mode'], (item['width'], item['height']), base64.b64decode(item['data']))
        buf = io.BytesIO()
        im.save(buf, 'PNG', optimize=bool(item.get('optimize')))
        out.append(base64.b64encode(buf.getvalue()).decode())
    else:
        png = base64.b64decode(item['png'])
        Image.open(io.BytesIO(png)).verify()  # chunk CRCs and structure
        im = Image.open(io.BytesIO(png))
        im.load()
        out.append({'mode': im.mode, 'size': list(im.size), 'data': base64.b64encode(im.tobytes()).decode()})
json.dump(out, sys.stdout)
`;
  const input = JSON.stringify(
    requests.map((r) =>
      r.op === 'encode' ? { ...r, data: Buffer.from(r.data).toString('base64') } : { op: r.op, png: r.png.toString('base64') },
    ),
  );
  return JSON.parse(execFileSync(PYTHON, ['-c', script], { input, encoding: 'utf8', maxBuffer: 64 << 20 })) as (string | PilDecoded)[];
}

/**
 * An RGB image whose rows are built so that each PNG filter type is the unique
 * best choice (least sum of |filtered bytes|) for some row, with random rows
 * between: a zero row (None), a ramp (Sub), a copy (Up), a row that is exactly
 * the Average prediction, and a row Paeth predicts but no single neighbour
 * does (left half flat and a little brighter than above, right half a copy).
 */
function filterExercisingImage(width: number): RasterImage {
  const bpp = 3;
  const stride = width * bpp;
  const rows: Uint8Array[] = [];
  const random = () => new Uint8Array(randomBytes(stride));
  const half = Math.floor(width / 2) * bpp;
  for (let round = 0; round < 2; round++) {
    rows.push(random(), new Uint8Array(stride)); // None
    const base = randomBytes(3);
    rows.push(random(), Uint8Array.from({ length: stride }, (_, i) => (base[i % 3]! + Math.floor(i / 3)) & 0xff)); // Sub
    const copy = random();
    rows.push(copy, copy.slice()); // Up
    const above = random();
    const average = new Uint8Array(stride);
    for (let i = 0; i < stride; i++) average[i] = ((i >= bpp ? average[i - bpp]! : 0) + above[i]!) >>> 1;
    rows.push(above, average); // Average
    const level = Array.from(randomBytes(3), (v) => 64 + (v % 128));
    const paethAbove = random();
    const paethRow = paethAbove.slice();
    for (let i = 0; i < half; i++) [paethAbove[i], paethRow[i]] = [level[i % 3]! - 3, level[i % 3]!];
    rows.push(paethAbove, paethRow); // Paeth
  }
  const data = new Uint8Array(rows.length * stride);
  rows.forEach((row, y) => data.set(row, y * stride));
  return { width, height: rows.length, channels: 3, data };
}

describe('image: PNG', () => {
  const sizes: [number, number][] = [[1, 1], [1, 7], [7, 1], [13, 5], [31, 17], [3, 64]];

  it('round-trips random gray, RGB and RGBA images of odd sizes with every filter choice', () => {
    const rng = freshRandom();
    for (const channels of [1, 3, 4] as const) {
      for (const [w, h] of [...sizes, [uniformInt(rng, 1, 80), uniformInt(rng, 1, 80)] as [number, number]]) {
        for (const filter of [0, 1, 2, 3, 4, 'adaptive'] as const) {
          const image = randomImage(w, h, channels);
          const png = encodePng(image, { filter });
          const back = decodePng(png);
          assert.deepEqual(
            { width: back.width, height: back.height, channels: back.channels },
            { width: w, height: h, channels },
            `${w}x${h}x${channels} filter ${filter}`,
          );
          assert.ok(Buffer.from(back.data).equals(Buffer.from(image.data)), `${w}x${h}x${channels} filter ${filter}: pixels differ`);
          if (filter !== 'adaptive') assert.ok(rowFilters(png).every((t) => t === filter), `filter ${filter} not used`);
        }
      }
    }
  });

  it('adaptive filtering picks several filter types on structured images and still round-trips', () => {
    const image = filterExercisingImage(41);
    const png = encodePng(image);
    assert.deepEqual(new Set(rowFilters(png)), new Set([0, 1, 2, 3, 4]));
    assert.ok(Buffer.from(decodePng(png).data).equals(Buffer.from(image.data)));
  });

  it('writes PNGs that PIL verifies and decodes to the same bytes', () => {
    const rng = freshRandom();
    const images = [1, 3, 4].flatMap((channels) => [
      randomImage(uniformInt(rng, 1, 40), uniformInt(rng, 1, 40), channels as 1 | 3 | 4),
      randomImage(uniformInt(rng, 1, 40) | 1, uniformInt(rng, 1, 40) | 1, channels as 1 | 3 | 4),
    ]);
    images.push(filterExercisingImage(uniformInt(rng, 20, 50)));
    const cases = images.flatMap((image) => ([0, 1, 2, 3, 4, 'adaptive'] as const).map((filter) => ({ image, filter })));
    const decoded = pil(cases.map(({ image, filter }) => ({ op: 'decode', png: encodePng(image, { filter }) }))) as PilDecoded[];
    cases.forEach(({ image, filter }, i) => {
      const got = decoded[i]!;
      const what = `${image.width}x${image.height}x${image.channels} filter ${filter}`;
      assert.equal(got.mode, { 1: 'L', 3: 'RGB', 4: 'RGBA' }[image.channels], what);
      assert.deepEqual(got.size, [image.width, image.height], what);
      assert.ok(Buffer.from(got.data, 'base64').equals(Buffer.from(image.data)), `${what}: pixels differ`);
    });
  });

  it('decodes PNGs written by PIL, including RGB rows with all five filter types', () => {
    const rng = freshRandom();
    const rgb = filterExercisingImage(uniformInt(rng, 20, 60));
    const cases: { mode: string; image: RasterImage }[] = [
      { mode: 'RGB', image: rgb },
      { mode: 'RGB', image: randomImage(uniformInt(rng, 1, 50), uniformInt(rng, 1, 50), 3) },
      { mode: 'L', image: randomImage(uniformInt(rng, 1, 50), uniformInt(rng, 1, 50), 1) },
      { mode: 'RGBA', image: randomImage(uniformInt(rng, 1, 50), uniformInt(rng, 1, 50), 4) },
    ];
    const pngs = pil(
      cases.map(({ mode, image }, i) => ({ op: 'encode', mode, width: image.width, height: image.height, data: image.data, optimize: i === 0 })),
    );
    const first = Buffer.from(pngs[0] as string, 'base64');
    assert.deepEqual(new Set(rowFilters(first)), new Set([0, 1, 2, 3, 4]), 'PIL should have used every filter type');
    cases.forEach(({ mode, image }, i) => {
      const back = decodePng(Buffer.from(pngs[i] as string, 'base64'));
      assert.deepEqual([back.width, back.height, back.channels], [image.width, image.height, image.channels], mode);
      assert.ok(Buffer.from(back.data).equals(Buffer.from(image.data)), `${mode} ${image.width}x${image.height}: pixels differ`);
    });
  });

  it('rejects corrupt chunks and bad images with clear errors', () => {
    assert.throws(() => decodePng(Buffer.from('GIF89a not a png')), /not a PNG/);

    const good = encodePng(randomImage(5, 4, 3));
    const interlaced = Buffer.from(good);
    interlaced[8 + 8 + 12] = 1; // IHDR interlace byte
    interlaced.writeUInt32BE(crc32(interlaced.subarray(12, 12 + 4 + 13)), 8 + 8 + 13);
    // Marked interlaced, the same scanlines are too few for the seven Adam7 passes.
    assert.throws(() => decodePng(interlaced), /inflates to 64 bytes; a 5x4 8-bit RGB, interlaced image needs 68/);
    const corrupt = Buffer.from(good);
    corrupt[8 + 25 + 10] = corrupt[8 + 25 + 10]! ^ 0x40; // a byte inside IDAT data
    assert.throws(() => decodePng(corrupt), /CRC mismatch in IDAT/);
    assert.throws(() => decodePng(good.subarray(0, good.length - 6)), /truncated/);

    assert.throws(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }), /needs 12/);
    assert.throws(() => encodePng({ width: 0, height: 2, channels: 1, data: new Uint8Array(0) }), /width/);
    assert.throws(() => encodePng({ width: 1, height: 1, channels: 2 as 1, data: new Uint8Array(2) }), /channels/);
  });

  it('writePng writes atomically: the file decodes, overwrites, and leaves no temporary files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-png-'));
    try {
      const path = join(dir, 'sample.png');
      writeFileSync(path, 'old contents');
      const image = randomImage(9, 11, 4);
      await writePng(path, image);
      assert.ok(Buffer.from(decodePng(readFileSync(path)).data).equals(Buffer.from(image.data)));
      assert.deepEqual(readdirSync(dir), ['sample.png']);
      await assert.rejects(writePng(join(dir, 'missing', 'x.png'), image), /ENOENT/);
      assert.deepEqual(readdirSync(dir), ['sample.png']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('image sets: a folder of PNGs', () => {
  it('drops the alpha of RGBA PNGs, keeping each pixel\'s colour bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-pngset-'));
    try {
      const images = [randomImage(7, 5, 4), randomImage(7, 5, 4)];
      for (const [i, image] of images.entries()) await writePng(join(dir, `${i}.png`), image);
      const set = await readImageSet(dir);
      assert.equal(set.images.channels, 3);
      images.forEach((image, i) => {
        for (let p = 0; p < 35; p++) {
          const at = (i * 35 + p) * 3;
          assert.deepEqual([...set.images.data.subarray(at, at + 3)], [...image.data.subarray(p * 4, p * 4 + 3)]);
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
const lit = (bitmap: Uint8Array) => bitmap.some((v) => v === 1);
const rowsLit = (bitmap: Uint8Array, from: number, to: number) =>
  bitmap.subarray(from * GLYPH_WIDTH, to * GLYPH_WIDTH).some((v) => v === 1);

describe('image: font', () => {
  it('has a non-empty glyph for every printable ASCII character but space, all distinct', () => {
    for (const ch of PRINTABLE) assert.equal(lit(glyphBitmap(ch)), ch !== ' ', `glyph ${JSON.stringify(ch)}`);
    const seen = new Map<string, string>();
    for (const ch of PRINTABLE) {
      const key = Buffer.from(glyphBitmap(ch)).toString('hex');
      assert.equal(seen.get(key), undefined, `${JSON.stringify(ch)} looks like ${JSON.stringify(seen.get(key))}`);
      seen.set(key, ch);
    }
    const differ = (a: string, b: string) => assert.ok(!Buffer.from(glyphBitmap(a)).equals(Buffer.from(glyphBitmap(b))), `${a} vs ${b}`);
    for (const [a, b] of [['l', '1'], ['l', 'I'], ['1', 'I'], ['l', '|'], ['O', '0'], ['o', '0'], ['S', '5'], ['B', '8'], ['Z', '2']]) differ(a!, b!);
  });

  it('draws real lower case: x-height letters below the cap line, descenders below the baseline', () => {
    for (let code = 65; code <= 90; code++) {
      const upper = String.fromCharCode(code);
      const lower = upper.toLowerCase();
      assert.ok(!Buffer.from(glyphBitmap(upper)).equals(Buffer.from(glyphBitmap(lower))), `${upper} == ${lower}`);
      assert.ok(!rowsLit(glyphBitmap(upper), 7, 9), `${upper} reaches below the baseline`);
      assert.ok(rowsLit(glyphBitmap(upper), 0, 1), `${upper} does not reach the cap line`);
    }
    for (const ch of 'acemnorsuvwxz') assert.ok(!rowsLit(glyphBitmap(ch), 0, 2), `${ch} is taller than x-height`);
    for (const ch of 'gjpqy') assert.ok(rowsLit(glyphBitmap(ch), 7, 9), `${ch} has no descender`);
    for (const ch of 'bdfhklt') assert.ok(rowsLit(glyphBitmap(ch), 0, 1), `${ch} has no ascender`);
  });

  it('measures tight boxes', () => {
    assert.deepEqual(measureText('', 3), { width: 0, height: 0 });
    assert.deepEqual(measureText('H', 1), { width: GLYPH_WIDTH, height: GLYPH_HEIGHT });
    assert.deepEqual(measureText('cfg+pag', 2), { width: 2 * (7 * ADVANCE - 1), height: 2 * GLYPH_HEIGHT });
    assert.deepEqual(measureText('ab\nsigma=2', 3), { width: 3 * (7 * ADVANCE - 1), height: 3 * (LINE_HEIGHT + GLYPH_HEIGHT) });
    assert.throws(() => measureText('x', 1.5), /scale/);
  });

  it('draws exactly the scaled glyph pixels, only inside the measured box', () => {
    const rng = freshRandom();
    const background: Color = [10, 20, 30];
    const ink: Color = [250, 200, 100];
    for (let trial = 0; trial < 20; trial++) {
      const scale = uniformInt(rng, 1, 3);
      const lines = Array.from({ length: uniformInt(rng, 1, 3) }, () =>
        Array.from({ length: uniformInt(rng, 1, 12) }, () => pick(rng, PRINTABLE)).join(''),
      );
      const text = lines.join('\n');
      const box = measureText(text, scale);
      const canvas = new Canvas(box.width + 20, box.height + 20, background);
      const x0 = uniformInt(rng, 0, 20);
      const y0 = uniformInt(rng, 0, 20);
      drawText(canvas, x0, y0, text, { scale, color: ink });
      for (let y = 0; y < canvas.height; y++) {
        for (let x = 0; x < canvas.width; x++) {
          const [dx, dy] = [x - x0, y - y0];
          let expected = false;
          if (dx >= 0 && dy >= 0 && dx < box.width && dy < box.height) {
            const line = lines[Math.floor(dy / (LINE_HEIGHT * scale))] ?? '';
            const ch = line[Math.floor(dx / (ADVANCE * scale))];
            const gx = Math.floor((dx % (ADVANCE * scale)) / scale);
            const gy = Math.floor((dy % (LINE_HEIGHT * scale)) / scale);
            expected = ch !== undefined && gx < GLYPH_WIDTH && gy < GLYPH_HEIGHT && glyphBitmap(ch)[gy * GLYPH_WIDTH + gx] === 1;
          }
          assert.deepEqual(canvas.pixel(x, y), expected ? ink : background, `seed ${rng.seed} ${JSON.stringify(text)} at (${x}, ${y})`);
        }
      }
      // The box is tight: text with a full-width glyph and a descender touches its right and bottom edges.
      const probe = new Canvas(measureText('Hg', scale).width, measureText('Hg', scale).height, background);
      drawText(probe, 0, 0, 'Hg', { scale, color: ink });
      assert.deepEqual(probe.pixel(probe.width - 1, 2 * scale), ink);
      assert.deepEqual(probe.pixel(probe.width - 2 * scale, probe.height - 1), ink);
    }
  });

  it('draws characters outside printable ASCII as ?', () => {
    const [a, b] = [new Canvas(5, 9), new Canvas(5, 9)];
    drawText(a, 0, 0, 'é');
    drawText(b, 0, 0, '?');
    assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)));
  });
});

/** The RGB value of pixel (x, y) of `image` as a canvas would show it. */
function rgbAt(image: RasterImage, x: number, y: number): Color {
  const i = (y * image.width + x) * image.channels;
  return image.channels === 1 ? [image.data[i]!, image.data[i]!, image.data[i]!] : [image.data[i]!, image.data[i + 1]!, image.data[i + 2]!];
}

/** Checks that `tile` appears in `out` at (x, y) upscaled by `scale`; marks those pixels in `covered`. */
function assertTileAt(out: RasterImage, tile: RasterImage, x: number, y: number, scale: number, covered: Uint8Array, what: string): void {
  for (let ty = 0; ty < tile.height * scale; ty++) {
    for (let tx = 0; tx < tile.width * scale; tx++) {
      assert.deepEqual(rgbAt(out, x + tx, y + ty), rgbAt(tile, Math.floor(tx / scale), Math.floor(ty / scale)), `${what} at +(${tx}, ${ty})`);
      covered[(y + ty) * out.width + x + tx] = 1;
    }
  }
}

describe('image: canvas', () => {
  it('blits gray, RGB and RGBA with upscaling and clipping; toImage copies', () => {
    const canvas = new Canvas(6, 5, [1, 2, 3]);
    canvas.blit({ width: 2, height: 1, channels: 1, data: Uint8Array.of(7, 9) }, -1, 3, 2);
    assert.deepEqual([canvas.pixel(0, 3), canvas.pixel(1, 3), canvas.pixel(2, 4), canvas.pixel(3, 4)], [[7, 7, 7], [9, 9, 9], [9, 9, 9], [1, 2, 3]]);
    canvas.blit({ width: 1, height: 1, channels: 4, data: Uint8Array.of(255, 0, 101, 51) }, 5, 0, 3);
    assert.deepEqual(canvas.pixel(5, 2), [Math.round((255 * 51 + 1 * 204) / 255), Math.round((2 * 204) / 255), Math.round((101 * 51 + 3 * 204) / 255)]);
    assert.deepEqual(canvas.pixel(4, 0), [1, 2, 3]);
    canvas.fillRect(-3, -3, 4, 4, [0, 0, 0]);
    assert.deepEqual([canvas.pixel(0, 0), canvas.pixel(1, 0)], [[0, 0, 0], [1, 2, 3]]);
    const image = canvas.toImage();
    canvas.fillRect(0, 0, 6, 5, [9, 9, 9]);
    assert.deepEqual(rgbAt(image, 1, 0), [1, 2, 3]);
    assert.throws(() => canvas.blit(image, 0, 0, 0), /scale/);
  });
});

describe('image: grid', () => {
  it('places random tiles where the layout math says, with background elsewhere', () => {
    const rng = freshRandom();
    for (let trial = 0; trial < 6; trial++) {
      const count = uniformInt(rng, 1, 9);
      const tiles = Array.from({ length: count }, () => randomImage(uniformInt(rng, 1, 9), uniformInt(rng, 1, 9), pick(rng, [1, 3] as const)));
      const columns = uniformInt(rng, 1, count + 2);
      const padding = uniformInt(rng, 0, 4);
      const scale = uniformInt(rng, 1, 3);
      const background: Color = [uniformInt(rng, 0, 255), uniformInt(rng, 0, 255), uniformInt(rng, 0, 255)];
      const out = imageGrid(tiles, { columns, padding, scale, background });
      const cols = Math.min(columns, count);
      const rows = Math.ceil(count / cols);
      const cellW = Math.max(...tiles.map((t) => t.width)) * scale;
      const cellH = Math.max(...tiles.map((t) => t.height)) * scale;
      assert.deepEqual([out.width, out.height, out.channels], [cols * cellW + (cols + 1) * padding, rows * cellH + (rows + 1) * padding, 3]);
      const covered = new Uint8Array(out.width * out.height);
      tiles.forEach((tile, i) => {
        const x = padding + (i % cols) * (cellW + padding) + Math.floor((cellW - tile.width * scale) / 2);
        const y = padding + Math.floor(i / cols) * (cellH + padding) + Math.floor((cellH - tile.height * scale) / 2);
        assertTileAt(out, tile, x, y, scale, covered, `seed ${rng.seed} tile ${i}`);
      });
      for (let p = 0; p < covered.length; p++) {
        if (!covered[p]) assert.deepEqual(rgbAt(out, p % out.width, Math.floor(p / out.width)), background, `seed ${rng.seed} pixel ${p}`);
      }
    }
  });

  it('lays out labelled rows: label column from the longest label, images after it, text only in the label areas', () => {
    const rng = freshRandom();
    const ink: Color = [200, 0, 0];
    const background: Color = [255, 255, 255];
    const scale = uniformInt(rng, 1, 3);
    const padding = uniformInt(rng, 1, 6);
    const rows = [
      { label: 'cfg+pag', sublabel: 'w=3 s=2', images: [randomImage(8, 8, 3), randomImage(8, 8, 1)] },
      { label: 'autoguidance', sublabel: 'sigma=2, ema 0.050', images: [randomImage(6, 8, 3)] },
      { label: 'none', images: [randomImage(8, 5, 3), randomImage(8, 8, 3), randomImage(8, 8, 1)] },
    ];
    for (const title of [undefined, 'Guidance comparison']) {
      const out = labelledRows(rows, { scale, padding, title, textColor: ink, background });
      const labelWidth = Math.max(measureText('autoguidance', 2).width, measureText('sigma=2, ema 0.050', 1).width);
      const cellW = 8 * scale;
      const cellH = 8 * scale;
      const textH = 2 * GLYPH_HEIGHT + 3 + GLYPH_HEIGHT;
      const rowH = Math.max(cellH, textH);
      const titleH = title === undefined ? 0 : 2 * GLYPH_HEIGHT + padding;
      const contentX = 2 * padding + labelWidth;
      assert.equal(out.width, Math.max(contentX + 3 * cellW + 2 * padding + padding, title === undefined ? 0 : 2 * padding + measureText(title, 2).width));
      assert.equal(out.height, 2 * padding + titleH + 3 * rowH + 2 * padding);
      const covered = new Uint8Array(out.width * out.height);
      rows.forEach((row, r) => {
        const top = padding + titleH + r * (rowH + padding);
        row.images.forEach((image, j) => {
          const x = contentX + j * (cellW + padding) + Math.floor((cellW - image.width * scale) / 2);
          const y = top + Math.floor((rowH - image.height * scale) / 2);
          assertTileAt(out, image, x, y, scale, covered, `row ${r} image ${j}`);
        });
        // The label block is inked, inside the label column of its row.
        let inked = 0;
        for (let y = top; y < top + rowH; y++) for (let x = padding; x < padding + labelWidth; x++) if (rgbAt(out, x, y)[0] === 200 && !covered[y * out.width + x]) inked++;
        assert.ok(inked > 20, `row ${r} label not drawn`);
      });
      for (let p = 0; p < covered.length; p++) {
        if (covered[p]) continue;
        const [x, y] = [p % out.width, Math.floor(p / out.width)];
        const color = rgbAt(out, x, y);
        if (color[0] === ink[0] && color[1] === ink[1]) {
          const inTitle = title !== undefined && y < padding + 2 * GLYPH_HEIGHT && x >= padding;
          const inLabels = x >= padding && x < padding + labelWidth && y >= padding + titleH;
          assert.ok(inTitle || inLabels, `text pixel outside the label column at (${x}, ${y})`);
        } else {
          assert.deepEqual(color, background, `(${x}, ${y})`);
        }
      }
    }
  });

  it('cuts labels to a given label width', () => {
    const out = labelledRows([{ label: 'a-very-long-label', sublabel: 'and a long sublabel too', images: [randomImage(4, 4, 3)] }], {
      labelWidth: 30,
      padding: 2,
      textColor: [0, 0, 255],
    });
    assert.equal(out.width, 2 + 30 + 2 + 4 + 2);
    for (let y = 0; y < out.height; y++) {
      for (let x = 2 + 30; x < 2 + 30 + 2; x++) assert.deepEqual(rgbAt(out, x, y), [255, 255, 255], `(${x}, ${y})`);
    }
  });
});

describe('image: colormap', () => {
  it('maps min to the first stop and max to the last, with and without explicit bounds', () => {
    const rng = freshRandom();
    const values = Float32Array.from({ length: 35 }, () => rng.normal() * 10);
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const image = heatmap(values, 7, 5);
    assert.deepEqual([image.width, image.height, image.channels], [7, 5, 3]);
    const at = (i: number) => Array.from(image.data.subarray(i * 3, i * 3 + 3));
    assert.deepEqual(at(values.indexOf(lo)), [0x44, 0x01, 0x54]); // viridis(0) = #440154
    assert.deepEqual(at(values.indexOf(hi)), [0xfd, 0xe7, 0x25]); // viridis(1) = #fde725
    assert.deepEqual(VIRIDIS[0], [0x44, 0x01, 0x54]);
    const clamped = heatmap(Float32Array.of(-5, 0, 0.5, 1, 7), 5, 1, { min: 0, max: 1, colormap: 'magma' });
    const px = (i: number) => Array.from(clamped.data.subarray(i * 3, i * 3 + 3));
    assert.deepEqual([px(0), px(1), px(3), px(4)], [MAGMA[0], MAGMA[0], MAGMA.at(-1), MAGMA.at(-1)].map((c) => Array.from(c!)));
    const mid = 0.5 * (MAGMA.length - 1);
    const [a, b] = [MAGMA[Math.floor(mid)]!, MAGMA[Math.ceil(mid)]!];
    assert.deepEqual(px(2), [0, 1, 2].map((c) => Math.round((a[c]! + b[c]!) / 2)));
  });

  it('gets lighter monotonically from min to max (viridis)', () => {
    let previous = -1;
    for (let i = 0; i <= 100; i++) {
      const [r, g, b] = colormapColor(i / 100);
      const luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
      assert.ok(luma > previous, `t=${i / 100}`);
      previous = luma;
    }
  });

  it('overlays a heatmap on a gray image by alpha', () => {
    const rng = freshRandom();
    const [w, h] = [uniformInt(rng, 1, 12), uniformInt(rng, 1, 12)];
    const base = randomImage(w, h, 1);
    const heat = heatmap(Float32Array.from({ length: w * h }, () => rng.next()), w, h);
    const alpha = rng.next();
    const out = overlay(base, heat, alpha);
    for (let i = 0; i < w * h; i++) {
      for (let c = 0; c < 3; c++) {
        assert.equal(out.data[i * 3 + c], Math.round((1 - alpha) * base.data[i]! + alpha * heat.data[i * 3 + c]!));
      }
    }
    assert.ok(Buffer.from(overlay(base, heat, 1).data).equals(Buffer.from(heat.data)));
    assert.throws(() => overlay(base, randomImage(w + 1, h, 3), 0.5), /base is/);
  });
});
