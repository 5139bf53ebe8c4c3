/**
 * The .npz container's constants shared by the writer (npz.ts) and the
 * reader (npz-read.ts): zip record signatures and limits, and the .npy
 * header of NEP 1.
 */
export type NpyDtype = 'uint8' | 'int64';

export const DESCR: Record<NpyDtype, string> = { uint8: '|u1', int64: '<i8' };
export const ITEM_SIZE: Record<NpyDtype, number> = { uint8: 1, int64: 8 };

export const LOCAL_SIG = 0x04034b50;
export const CENTRAL_SIG = 0x02014b50;
export const END_SIG = 0x06054b50;
export const ZIP64_END_SIG = 0x06064b50;
export const ZIP64_LOCATOR_SIG = 0x07064b50;
export const MAX32 = 0xffffffff;
export const MAX16 = 0xffff;
/** A directory larger than this is no archive of arrays (an entry needs 46 bytes and its name). */
export const MAX_DIRECTORY_BYTES = 64 << 20;
/** 1980-01-01 00:00 in DOS date/time: fixed, so the same arrays give the same bytes. */
export const DOS_TIME = 0;
export const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** The .npy header (magic, version 1.0, dict) for an array of `dtype` and `shape`. */
export function npyHeader(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // magic (6) + version (2) + length (2) + dict + padding + '\n', a multiple of 64.
  const unpadded = 10 + dict.length + 1;
  const total = Math.ceil(unpadded / 64) * 64;
  const text = dict + ' '.repeat(total - unpadded) + '\n';
  const out = new Uint8Array(total);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(Buffer.from(text, 'latin1'), 10);
  return out;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
