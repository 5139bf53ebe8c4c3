/**
 * PNG row filters (filter method 0, PNG spec section 9): the encoder's
 * forward direction and its choice heuristic, and the decoder's inverse.
 * Both work on bytes, whatever the pixel format: `bpp` is the number of bytes
 * per complete pixel, rounded up to 1 for bit depths below 8.
 */

/** The filter types of filter method 0: None, Sub, Up, Average, Paeth. */
export type FilterType = 0 | 1 | 2 | 3 | 4;

/** The Paeth predictor: whichever of left, above and upper-left is nearest a + b - c. */
export function paeth(a: number, b: number, c: number): number {
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
export function filterRow(type: FilterType, row: Uint8Array, prev: Uint8Array, bpp: number, out: Uint8Array): void {
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
export function filterCost(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum += bytes[i]! < 128 ? bytes[i]! : 256 - bytes[i]!;
  return sum;
}

/**
 * Undoes filter `type` on `row` in place. `prev` is the previous row of the
 * same pass, already unfiltered, or undefined for a pass's first row (the
 * spec treats the row above it as zeros). Returns false for a filter type
 * outside 0..4, leaving the message to the caller, who knows the row.
 * One loop per type, rather than a switch per byte, because decoding
 * folders of images spends most of its time here.
 */
export function unfilterRow(type: number, row: Uint8Array, prev: Uint8Array | undefined, bpp: number): boolean {
  const n = row.length;
  switch (type) {
    case 0:
      return true;
    case 1:
      for (let i = bpp; i < n; i++) row[i] = row[i]! + row[i - bpp]!;
      return true;
    case 2:
      if (prev) for (let i = 0; i < n; i++) row[i] = row[i]! + prev[i]!;
      return true;
    case 3:
      for (let i = 0; i < n; i++) row[i] = row[i]! + (((i >= bpp ? row[i - bpp]! : 0) + (prev ? prev[i]! : 0)) >>> 1);
      return true;
    case 4:
      if (!prev) return unfilterRow(1, row, undefined, bpp); // with zeros above, Paeth predicts the left byte
      for (let i = 0; i < n; i++) {
        row[i] = row[i]! + (i >= bpp ? paeth(row[i - bpp]!, prev[i]!, prev[i - bpp]!) : prev[i]!);
      }
      return true;
    default:
      return false;
  }
}
