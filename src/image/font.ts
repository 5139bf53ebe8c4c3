/**
 * A built-in bitmap font so figures can carry labels ("cfg+pag", "sigma=2")
 * without a font file or a rasteriser dependency. Glyphs are 5x9 pixels:
 * rows 0-6 above the baseline (capitals, digits, ascenders), rows 7-8 for the
 * descenders of g, j, p, q, y, so lower case reads as lower case. Characters
 * advance 6 pixels (one blank column) and lines 10 (one blank row); `scale`
 * multiplies everything by an integer.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { BLACK, type Canvas, type Color } from './canvas.js';

/** Width of one glyph of the built-in bitmap font, in unscaled pixels. */
export const GLYPH_WIDTH = 5;
/** Height of one glyph of the built-in bitmap font, in unscaled pixels. */
export const GLYPH_HEIGHT = 9;
/** Horizontal advance per character, in unscaled pixels. */
export const ADVANCE = 6;
/** Vertical advance per line, in unscaled pixels. */
export const LINE_HEIGHT = 10;

/**
 * Printable ASCII 32..126 in order, one 9-character word per glyph, one
 * character per row from the top: the row's 5 pixels as a base-32 digit,
 * leftmost pixel in the high bit ('0' blank row, 'v' all five lit).
 */
const GLYPH_DATA = [
  '000000000 444440400 aaa000000 aavavaa00 4fke5u400 op248j300 cik8lid00 448000000', //  !"#$%&'
  '248884200 842224800 04lel4000 044v44000 00000c480 000v00000 00000cc00 01248g000', // ()*+,-./
  'ehjlphe00 4ck444v00 eh1248v00 v2421he00 26aiv2200 vgu11he00 68guhhe00 v12488800', // 01234567
  'ehhehhe00 ehhf12c00 00cc0cc00 00cc0c480 248g84200 00v0v0000 842124800 eh1240400', // 89:;<=>?
  'ehnlngf00 ehhvhhh00 uhhuhhu00 ehggghe00 sihhhis00 vgguggv00 vgguggg00 ehgnhhf00', // @ABCDEFG
  'hhhvhhh00 e44444e00 72222ic00 hikokih00 ggggggv00 hrllhhh00 hhpljhh00 ehhhhhe00', // HIJKLMNO
  'uhhuggg00 ehhhlid00 uhhukih00 fgge11u00 v44444400 hhhhhhe00 hhhhha400 hhhllla00', // PQRSTUVW
  'hha4ahh00 hha444400 v1248gv00 e88888e00 0g8421000 e22222e00 4ah000000 0000000v0', // XYZ[\]^_
  '842000000 00e1fhf00 ggmphhu00 00egghe00 11djhhf00 00ehvge00 698s88800 00fhhhf1e', // `abcdefg
  'ggmphhh00 40c444e00 2062222ic ggikoki00 c44444e00 00qllll00 00mphhh00 00ehhhe00', // hijklmno
  '00uhhhugg 00fhhhf11 00mpggg00 00fge1u00 88s889600 00hhhjd00 00hhha400 00hhlla00', // pqrstuvw
  '00ha4ah00 00hhhhf1e 00v248v00 244844200 444444400 844244800 008l20000', // xyz{|}~
].join(' ').split(' ');

const FIRST = 32;
const LAST = 126;

/** Row bitmasks per glyph, decoded once: GLYPHS[code - 32][row], bit 4 = leftmost. */
const GLYPHS: readonly (readonly number[])[] = GLYPH_DATA.map((word) => Array.from(word, (digit) => parseInt(digit, 32)));

/** Characters outside printable ASCII are drawn as this. */
const REPLACEMENT = '?';

function glyphIndex(char: string): number {
  const code = char.codePointAt(0) ?? 0;
  return code >= FIRST && code <= LAST ? code - FIRST : REPLACEMENT.charCodeAt(0) - FIRST;
}

/**
 * The glyph for `char` as GLYPH_HEIGHT rows of GLYPH_WIDTH 0/1 pixels
 * (row-major). Non-ASCII characters give the '?' glyph.
 */
export function glyphBitmap(char: string): Uint8Array {
  const rows = GLYPHS[glyphIndex(char)]!;
  const out = new Uint8Array(GLYPH_WIDTH * GLYPH_HEIGHT);
  rows.forEach((bits, y) => {
    for (let x = 0; x < GLYPH_WIDTH; x++) out[y * GLYPH_WIDTH + x] = (bits >> (GLYPH_WIDTH - 1 - x)) & 1;
  });
  return out;
}

function checkScale(scale: number): void {
  if (!Number.isInteger(scale) || scale < 1) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `text scale must be an integer >= 1, got ${scale}`);
  }
}

/**
 * The box `drawText` covers: width of the longest line (no trailing blank
 * column), height from the first line's top to the last line's descenders.
 * Empty text measures 0 x 0. Lines split on '\n'.
 */
export function measureText(text: string, scale = 1): { width: number; height: number } {
  checkScale(scale);
  if (text === '') return { width: 0, height: 0 };
  const lines = text.split('\n');
  const longest = Math.max(...lines.map((line) => Array.from(line).length));
  const width = longest === 0 ? 0 : (longest * ADVANCE - (ADVANCE - GLYPH_WIDTH)) * scale;
  const height = ((lines.length - 1) * LINE_HEIGHT + GLYPH_HEIGHT) * scale;
  return { width, height };
}

/** How {@link drawText} draws: size and colour. */
export interface TextStyle {
  /** Integer pixel size multiplier (default 1: 5x9 glyphs). */
  scale?: number;
  /** Default black. */
  color?: Color;
}

/**
 * Draws `text` with the top-left of its measured box at (x, y). Only lit
 * glyph pixels are painted (the background shows through), clipped to the
 * canvas.
 */
export function drawText(canvas: Canvas, x: number, y: number, text: string, style: TextStyle = {}): void {
  const scale = style.scale ?? 1;
  const color = style.color ?? BLACK;
  checkScale(scale);
  text.split('\n').forEach((line, lineNo) => {
    Array.from(line).forEach((char, col) => {
      const rows = GLYPHS[glyphIndex(char)]!;
      const gx = x + col * ADVANCE * scale;
      const gy = y + lineNo * LINE_HEIGHT * scale;
      rows.forEach((bits, row) => {
        for (let px = 0; px < GLYPH_WIDTH; px++) {
          if ((bits >> (GLYPH_WIDTH - 1 - px)) & 1) canvas.fillRect(gx + px * scale, gy + row * scale, scale, scale, color);
        }
      });
    });
  });
}

/**
 * The longest prefix of `text` (single line) whose measured width fits in
 * `maxWidth`; for fixed-width label columns.
 */
export function fitText(text: string, maxWidth: number, scale = 1): string {
  const chars = Array.from(text);
  const fits = Math.max(0, Math.floor((maxWidth / scale + (ADVANCE - GLYPH_WIDTH)) / ADVANCE));
  return chars.slice(0, fits).join('');
}
