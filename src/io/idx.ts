/**
 * IDX files (the MNIST family's format: a magic number, big-endian sizes,
 * then the bytes), gzipped or not. Only unsigned-byte data, which is what
 * image and label files hold.
 *
 * The header declares the data's size, and that is checked before the data
 * is read or inflated: against the memory limit (src/limits.ts) and against
 * what the file holds. A gzip bomb (a small file that inflates to gigabytes)
 * is stopped at the declared size plus one byte, streaming, off the event
 * loop's back. `checkShape` sees the declared shape before anything else
 * is read and may throw.
 */
import { constants as bufferConstants } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { createGunzip, gunzipSync } from 'node:zlib';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { RAISE_LIMIT, checkMemory, formatBytes, resourceLimits } from '../core/limits.js';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/** The IDX header in `head`: the shape and the header's length, or undefined when more bytes are needed. */
function parseHeader(head: Uint8Array, name: string, checkShape?: (shape: number[]) => void): { shape: number[]; offset: number; size: number } | undefined {
  if (head.length < 4) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (view.getUint16(0) !== 0 || head[2] !== 0x08) throw new Error(`${name}: not an unsigned-byte IDX file`);
  const ndim = head[3]!;
  if (ndim === 0) throw new Error(`${name}: an IDX file without dimensions`);
  const offset = 4 + 4 * ndim;
  if (head.length < offset) return undefined;
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const size = shape.reduce((a, b) => a * b, 1);
  checkShape?.(shape);
  checkMemory(size, `${name} (its header declares ${shape.join('x')} bytes of data)`, 'read a smaller file', ErrorCodes.TOO_LARGE);
  return { shape, offset, size };
}

/** Parses IDX bytes already in memory (gunzipped first when they start with gzip's magic, at most to the memory limit). */
export function parseIdx(bytes: Uint8Array, name = 'IDX data'): IdxArray {
  let raw = bytes;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    // zlib refuses a cap above the largest Buffer, which a generous memory limit exceeds.
    const cap = Math.min(resourceLimits().memoryBytes, bufferConstants.MAX_LENGTH);
    try {
      raw = gunzipSync(bytes, { maxOutputLength: cap });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw error;
      throw new TorchGuidanceError(ErrorCodes.TOO_LARGE, `${name} inflates past ${formatBytes(cap)} (the memory limit, or the largest buffer Node.js allows). Fix: read a smaller file, or ${RAISE_LIMIT}.`);
    }
  }
  const header = parseHeader(raw, name);
  if (!header) throw new Error(`${name}: truncated IDX header`);
  const { shape, offset, size } = header;
  if (raw.length !== offset + size) throw new Error(`${name}: ${raw.length - offset} bytes of data for shape ${shape.join('x')}`);
  return { shape, data: new Uint8Array(raw.buffer, raw.byteOffset + offset, size) };
}

/**
 * Reads an IDX file, gzipped or not, streaming: the data buffer is allocated
 * once the header's size has passed its checks, and reading stops with an
 * error at the first byte beyond it.
 */
export async function readIdx(path: string, checkShape?: (shape: number[]) => void): Promise<IdxArray> {
  const magic = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    createReadStream(path, { start: 0, end: 1 })
      .on('data', (c) => chunks.push(c as Buffer))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject);
  });
  const gzipped = magic[0] === 0x1f && magic[1] === 0x8b;
  const file = createReadStream(path);
  const source = gzipped ? file.pipe(createGunzip()) : file;
  if (gzipped) file.on('error', (error) => source.destroy(error));
  let head = new Uint8Array(0);
  let header: ReturnType<typeof parseHeader>;
  let data: Uint8Array | undefined;
  let filled = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      let bytes: Uint8Array = chunk;
      if (!header) {
        const joined = new Uint8Array(head.length + bytes.length);
        joined.set(head);
        joined.set(bytes, head.length);
        header = parseHeader(joined, path, checkShape);
        if (!header) {
          head = joined;
          continue;
        }
        data = new Uint8Array(header.size);
        bytes = joined.subarray(header.offset);
      }
      if (filled + bytes.length > data!.length) {
        throw new Error(`${path}: holds more data than its header declares (${header.shape.join('x')} bytes)${gzipped ? '; stopped inflating there' : ''}`);
      }
      data!.set(bytes, filled);
      filled += bytes.length;
    }
  } finally {
    source.destroy();
    file.destroy();
  }
  if (!header) throw new Error(`${path}: truncated IDX header`);
  if (filled !== header.size) throw new Error(`${path}: ${filled} bytes of data for shape ${header.shape.join('x')}`);
  return { shape: header.shape, data: data! };
}
