/**
 * Reading .npz archives: what the writer in npz.ts writes, and numpy.savez's
 * stored (uncompressed) archives, record by record from the zip directory.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

import { CENTRAL_SIG, DESCR, END_SIG, ITEM_SIZE, LOCAL_SIG, MAX16, MAX32, MAX_DIRECTORY_BYTES, ZIP64_END_SIG, ZIP64_LOCATOR_SIG, elementCount, type NpyDtype } from './npz-format.js';


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
