/**
 * IDX files (the MNIST family's format: a magic number, big-endian sizes,
 * then the bytes), gzipped or not. Only unsigned-byte data, which is what
 * image and label files hold.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/** Parses IDX bytes (gunzipped first when they start with gzip's magic). */
export function parseIdx(bytes: Uint8Array, name = 'IDX data'): IdxArray {
  const raw = Buffer.from(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes);
  if (raw.length < 4 || raw.readUInt16BE(0) !== 0 || raw[2] !== 0x08) throw new Error(`${name}: not an unsigned-byte IDX file`);
  const ndim = raw[3]!;
  if (raw.length < 4 + 4 * ndim) throw new Error(`${name}: truncated IDX header`);
  const shape = Array.from({ length: ndim }, (_, i) => raw.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const size = shape.reduce((a, b) => a * b, 1);
  if (raw.length !== offset + size) throw new Error(`${name}: ${raw.length - offset} bytes of data for shape ${shape.join('x')}`);
  return { shape, data: new Uint8Array(raw.buffer, raw.byteOffset + offset, size) };
}

export async function readIdx(path: string): Promise<IdxArray> {
  return parseIdx(await readFile(path), path);
}
