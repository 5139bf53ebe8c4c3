/**
 * A minimal .npz writer and reader: a zip archive of stored (uncompressed)
 * .npy files, what numpy.savez writes and numpy.load reads. Enough for
 * sample batches: uint8 NHWC images under `arr_0` (the key the guided-
 * diffusion FID evaluator reads) and int64 labels under `arr_1`.
 *
 * The writer streams: each entry's size is known from its shape before its
 * bytes arrive, so the local header is written first and only its CRC-32 is
 * patched in afterwards. Entries or offsets past 4 GiB get ZIP64 records.
 *
 * Formats: PKWARE APPNOTE 6.3 (sections 4.3.7 local header, 4.3.12 central
 * directory, 4.3.14-16 end records, 4.5.3 ZIP64 extra field); NEP 1 (.npy
 * version 1.0: magic, header length, a Python dict literal padded to 64).
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

import { writeFileAtomic } from './atomic.js';

export type NpyDtype = 'uint8' | 'int64';

const DESCR: Record<NpyDtype, string> = { uint8: '|u1', int64: '<i8' };
const ITEM_SIZE: Record<NpyDtype, number> = { uint8: 1, int64: 8 };

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const END_SIG = 0x06054b50;
const ZIP64_END_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
/** A directory larger than this is no archive of arrays (an entry needs 46 bytes and its name). */
const MAX_DIRECTORY_BYTES = 64 << 20;
/** 1980-01-01 00:00 in DOS date/time: fixed, so the same arrays give the same bytes. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

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

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

interface CentralEntry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

export interface NpzArray {
  name: string;
  dtype: NpyDtype;
  shape: readonly number[];
  /** The array's bytes in C order, little-endian: one buffer or a stream of chunks. */
  data: Uint8Array | AsyncIterable<Uint8Array>;
}

/** Writes a stored zip of .npy entries through a file handle, sequentially from offset 0. */
class NpzStreamWriter {
  #file: FileHandle;
  #offset = 0;
  #entries: CentralEntry[] = [];
  #forceZip64: boolean;

  constructor(file: FileHandle, forceZip64: boolean) {
    this.#file = file;
    this.#forceZip64 = forceZip64;
  }

  async #write(bytes: Uint8Array, at = this.#offset): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.#file.write(bytes, done, bytes.length - done, at + done);
      done += bytesWritten;
    }
    if (at === this.#offset) this.#offset += bytes.length;
  }

  async add(array: NpzArray): Promise<void> {
    const header = npyHeader(array.dtype, array.shape);
    const dataBytes = elementCount(array.shape) * ITEM_SIZE[array.dtype];
    const size = header.length + dataBytes;
    const name = Buffer.from(`${array.name}.npy`, 'utf8');
    const zip64 = this.#forceZip64 || size >= MAX32;
    const start = this.#offset;
    const local = Buffer.alloc(30 + name.length + (zip64 ? 20 : 0));
    local.writeUInt32LE(LOCAL_SIG, 0);
    local.writeUInt16LE(zip64 ? 45 : 20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // method: stored
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(0, 14); // CRC-32, patched below
    local.writeUInt32LE(zip64 ? MAX32 : size, 18);
    local.writeUInt32LE(zip64 ? MAX32 : size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(zip64 ? 20 : 0, 28);
    name.copy(local, 30);
    if (zip64) {
      const extra = 30 + name.length;
      local.writeUInt16LE(0x0001, extra);
      local.writeUInt16LE(16, extra + 2);
      local.writeBigUInt64LE(BigInt(size), extra + 4);
      local.writeBigUInt64LE(BigInt(size), extra + 12);
    }
    await this.#write(local);
    let crc = crc32(header);
    await this.#write(header);
    let written = 0;
    const chunks = array.data instanceof Uint8Array ? [array.data] : array.data;
    for await (const chunk of chunks) {
      if (written + chunk.length > dataBytes) {
        throw new Error(`npz entry ${array.name}: more than the ${dataBytes} data bytes of shape [${array.shape.join(', ')}]`);
      }
      crc = crc32(chunk, crc);
      await this.#write(chunk);
      written += chunk.length;
    }
    if (written !== dataBytes) {
      throw new Error(`npz entry ${array.name}: expected ${dataBytes} data bytes for shape [${array.shape.join(', ')}], got ${written}`);
    }
    const crcBytes = Buffer.alloc(4);
    crcBytes.writeUInt32LE(crc, 0);
    await this.#write(crcBytes, start + 14);
    this.#entries.push({ name, crc, size, offset: start });
  }

  async finish(): Promise<void> {
    const cdStart = this.#offset;
    for (const e of this.#entries) {
      const bigSize = this.#forceZip64 || e.size >= MAX32;
      const bigOffset = this.#forceZip64 || e.offset >= MAX32;
      const extraLength = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
      const central = Buffer.alloc(46 + e.name.length + (extraLength > 0 ? 4 + extraLength : 0));
      central.writeUInt32LE(CENTRAL_SIG, 0);
      central.writeUInt16LE(extraLength > 0 ? 45 : 20, 4); // version made by (MS-DOS attributes)
      central.writeUInt16LE(extraLength > 0 ? 45 : 20, 6); // version needed
      central.writeUInt16LE(0, 8);
      central.writeUInt16LE(0, 10);
      central.writeUInt16LE(DOS_TIME, 12);
      central.writeUInt16LE(DOS_DATE, 14);
      central.writeUInt32LE(e.crc, 16);
      central.writeUInt32LE(bigSize ? MAX32 : e.size, 20);
      central.writeUInt32LE(bigSize ? MAX32 : e.size, 24);
      central.writeUInt16LE(e.name.length, 28);
      central.writeUInt16LE(extraLength > 0 ? 4 + extraLength : 0, 30);
      central.writeUInt16LE(0, 32); // comment
      central.writeUInt16LE(0, 34); // disk
      central.writeUInt16LE(0, 36); // internal attributes
      central.writeUInt32LE(0, 38); // external attributes
      central.writeUInt32LE(bigOffset ? MAX32 : e.offset, 42);
      e.name.copy(central, 46);
      if (extraLength > 0) {
        let at = 46 + e.name.length;
        central.writeUInt16LE(0x0001, at);
        central.writeUInt16LE(extraLength, at + 2);
        at += 4;
        if (bigSize) {
          central.writeBigUInt64LE(BigInt(e.size), at);
          central.writeBigUInt64LE(BigInt(e.size), at + 8);
          at += 16;
        }
        if (bigOffset) central.writeBigUInt64LE(BigInt(e.offset), at);
      }
      await this.#write(central);
    }
    const cdSize = this.#offset - cdStart;
    const count = this.#entries.length;
    const zip64 = this.#forceZip64 || cdStart >= MAX32 || cdSize >= MAX32 || count >= MAX16;
    if (zip64) {
      const endStart = this.#offset;
      const end64 = Buffer.alloc(56 + 20);
      end64.writeUInt32LE(ZIP64_END_SIG, 0);
      end64.writeBigUInt64LE(44n, 4); // size of the rest of this record
      end64.writeUInt16LE(45, 12);
      end64.writeUInt16LE(45, 14);
      end64.writeUInt32LE(0, 16);
      end64.writeUInt32LE(0, 20);
      end64.writeBigUInt64LE(BigInt(count), 24);
      end64.writeBigUInt64LE(BigInt(count), 32);
      end64.writeBigUInt64LE(BigInt(cdSize), 40);
      end64.writeBigUInt64LE(BigInt(cdStart), 48);
      end64.writeUInt32LE(ZIP64_LOCATOR_SIG, 56);
      end64.writeUInt32LE(0, 60);
      end64.writeBigUInt64LE(BigInt(endStart), 64);
      end64.writeUInt32LE(1, 72);
      await this.#write(end64);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(END_SIG, 0);
    end.writeUInt16LE(zip64 ? MAX16 : count, 8);
    end.writeUInt16LE(zip64 ? MAX16 : count, 10);
    end.writeUInt32LE(zip64 ? MAX32 : cdSize, 12);
    end.writeUInt32LE(zip64 ? MAX32 : cdStart, 16);
    await this.#write(end);
    await this.#file.truncate(this.#offset);
  }
}

export interface WriteNpzOptions {
  /** Write ZIP64 records even when nothing needs them (for tests of the large-file path). */
  forceZip64?: boolean;
}

/** Writes `arrays` as an .npz at `path`, atomically (src/io/atomic.ts). */
export async function writeNpz(path: string, arrays: readonly NpzArray[], options: WriteNpzOptions = {}): Promise<void> {
  await writeFileAtomic(path, async (file) => {
    const writer = new NpzStreamWriter(file, options.forceZip64 ?? false);
    for (const array of arrays) await writer.add(array);
    await writer.finish();
  });
}

// ---------------------------------------------------------------------------
// Reading (what this writer writes, and numpy.savez's stored archives)

export interface NpzEntry {
  /** The key, without '.npy'. */
  name: string;
  dtype: NpyDtype;
  shape: number[];
  /** CRC-32 and size of the whole .npy (header + data), from the central directory. */
  crc: number;
  size: number;
  /** Where the .npy starts in the file, and where its data (after the .npy header) starts. */
  npyOffset: number;
  dataOffset: number;
  dataBytes: number;
}

export class NpzFormatError extends Error {}

async function readAt(file: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new NpzFormatError(`unexpected end of file at offset ${offset + done}`);
    done += bytesRead;
  }
  return buf;
}

function parseNpyHeader(buf: Buffer): { dtype: NpyDtype; shape: number[]; headerLength: number } {
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') throw new NpzFormatError('not a .npy entry (bad magic)');
  const major = buf[6]!;
  const lengthBytes = major === 1 ? 2 : 4;
  const dictLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const headerLength = 8 + lengthBytes + dictLength;
  if (buf.length < headerLength) throw new NpzFormatError('truncated .npy header');
  const dict = buf.toString('latin1', 8 + lengthBytes, headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(dict)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(dict)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(dict)?.[1];
  const dtype = (Object.keys(DESCR) as NpyDtype[]).find((k) => DESCR[k] === descr || (k === 'uint8' && descr === '<u1'));
  if (!dtype || fortran !== 'False' || shapeText === undefined) throw new NpzFormatError(`unsupported .npy header ${dict.trim()}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new NpzFormatError(`bad shape in .npy header ${dict.trim()}`);
  return { dtype, shape, headerLength };
}

/** Where the central directory lies: its entry count, size and start (ZIP64 where the 32-bit fields overflow). */
async function centralDirectory(file: FileHandle, fileSize: number): Promise<{ count: number; cdSize: number; cdStart: number }> {
  const tailLength = Math.min(fileSize, 22 + MAX16);
  const tail = await readAt(file, fileSize - tailLength, tailLength);
  let endAt = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === END_SIG) {
      endAt = i;
      break;
    }
  }
  if (endAt < 0) throw new NpzFormatError('no end-of-central-directory record (truncated or not a zip)');
  let count = tail.readUInt16LE(endAt + 10);
  let cdSize = tail.readUInt32LE(endAt + 12);
  let cdStart = tail.readUInt32LE(endAt + 16);
  if (count === MAX16 || cdSize === MAX32 || cdStart === MAX32) {
    const locatorAt = endAt - 20;
    if (locatorAt < 0 || tail.readUInt32LE(locatorAt) !== ZIP64_LOCATOR_SIG) throw new NpzFormatError('ZIP64 locator missing');
    const end64 = await readAt(file, Number(tail.readBigUInt64LE(locatorAt + 8)), 56);
    if (end64.readUInt32LE(0) !== ZIP64_END_SIG) throw new NpzFormatError('ZIP64 end record missing');
    count = Number(end64.readBigUInt64LE(32));
    cdSize = Number(end64.readBigUInt64LE(40));
    cdStart = Number(end64.readBigUInt64LE(48));
  }
  if (cdStart + cdSize > fileSize) throw new NpzFormatError('central directory past the end of the file');
  // Read into memory: bounded by what its entry count can need (names of up to 64 KiB each), never by the file.
  if (count > cdSize / 46 || cdSize > count * (46 + 3 * MAX16) || cdSize > MAX_DIRECTORY_BYTES) {
    throw new NpzFormatError(`a central directory of ${cdSize} bytes for ${count} entries`);
  }
  return { count, cdSize, cdStart };
}

/** One central directory record at `at`: the entry's name, method, CRC, sizes and local header offset, and where the next record starts. */
function centralRecord(cd: Buffer, at: number) {
  if (at + 46 > cd.length || cd.readUInt32LE(at) !== CENTRAL_SIG) throw new NpzFormatError('bad central directory entry');
  const method = cd.readUInt16LE(at + 10);
  const crc = cd.readUInt32LE(at + 16);
  let compressed = cd.readUInt32LE(at + 20);
  let size = cd.readUInt32LE(at + 24);
  const nameLength = cd.readUInt16LE(at + 28);
  const extraLength = cd.readUInt16LE(at + 30);
  const commentLength = cd.readUInt16LE(at + 32);
  let offset = cd.readUInt32LE(at + 42);
  const name = cd.toString('utf8', at + 46, at + 46 + nameLength);
  let extraAt = at + 46 + nameLength;
  const extraEnd = extraAt + extraLength;
  while (extraAt + 4 <= extraEnd) {
    const id = cd.readUInt16LE(extraAt);
    const length = cd.readUInt16LE(extraAt + 2);
    if (id === 0x0001) {
      let p = extraAt + 4;
      // Only the fields whose 32-bit slot holds 0xFFFFFFFF are present, in this order.
      if (size === MAX32) {
        size = Number(cd.readBigUInt64LE(p));
        p += 8;
      }
      if (compressed === MAX32) {
        compressed = Number(cd.readBigUInt64LE(p));
        p += 8;
      }
      if (offset === MAX32) offset = Number(cd.readBigUInt64LE(p));
    }
    extraAt += 4 + length;
  }
  return { name, method, crc, compressed, size, offset, next: extraEnd + commentLength };
}

/** The entry a central record describes, checked against its local header and .npy header. */
async function npzEntry(file: FileHandle, record: ReturnType<typeof centralRecord>, cdStart: number): Promise<NpzEntry> {
  const { name, method, crc, compressed, size, offset } = record;
  if (method !== 0 || compressed !== size) throw new NpzFormatError(`entry ${name} is compressed; only stored entries are read`);
  const local = await readAt(file, offset, 30);
  if (local.readUInt32LE(0) !== LOCAL_SIG) throw new NpzFormatError(`bad local header for ${name}`);
  const npyOffset = offset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (npyOffset + size > cdStart) throw new NpzFormatError(`entry ${name} runs into the central directory`);
  const head = await readAt(file, npyOffset, Math.min(size, 4096));
  const { dtype, shape, headerLength } = parseNpyHeader(head);
  const dataBytes = elementCount(shape) * ITEM_SIZE[dtype];
  if (headerLength + dataBytes !== size) throw new NpzFormatError(`entry ${name}: its size does not match its shape [${shape.join(', ')}]`);
  return { name: name.replace(/\.npy$/, ''), dtype, shape, crc, size, npyOffset, dataOffset: npyOffset + headerLength, dataBytes };
}

/** The entries of the .npz at `path`; throws NpzFormatError when it is not a well-formed stored archive. */
export async function readNpzEntries(path: string): Promise<NpzEntry[]> {
  const file = await open(path, 'r');
  try {
    const { size: fileSize } = await file.stat();
    const { count, cdSize, cdStart } = await centralDirectory(file, fileSize);
    const cd = await readAt(file, cdStart, cdSize);
    const entries: NpzEntry[] = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      const record = centralRecord(cd, at);
      at = record.next;
      entries.push(await npzEntry(file, record, cdStart));
    }
    return entries;
  } finally {
    await file.close();
  }
}

/** Streams an entry's data bytes (after the .npy header) in chunks. */
export async function* readNpzData(path: string, entry: NpzEntry, chunkBytes = 4 << 20): AsyncGenerator<Uint8Array> {
  const file = await open(path, 'r');
  try {
    for (let at = 0; at < entry.dataBytes; at += chunkBytes) {
      yield await readAt(file, entry.dataOffset + at, Math.min(chunkBytes, entry.dataBytes - at));
    }
  } finally {
    await file.close();
  }
}

/** Whether an entry's bytes match its CRC-32 (reads the whole entry). */
export async function checkNpzCrc(path: string, entry: NpzEntry): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    let crc = 0;
    const chunk = 4 << 20;
    for (let at = 0; at < entry.size; at += chunk) {
      crc = crc32(await readAt(file, entry.npyOffset + at, Math.min(chunk, entry.size - at)), crc);
    }
    return crc === entry.crc;
  } finally {
    await file.close();
  }
}
