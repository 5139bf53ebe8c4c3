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
import { crc32 } from 'node:zlib';

import { writeFileAtomic } from './atomic.js';
import {
  CENTRAL_SIG,
  DOS_DATE,
  DOS_TIME,
  END_SIG,
  ITEM_SIZE,
  LOCAL_SIG,
  MAX16,
  MAX32,
  ZIP64_END_SIG,
  ZIP64_LOCATOR_SIG,
  elementCount,
  npyHeader,
  type NpyDtype,
} from './npz-format.js';

export { npyHeader, type NpyDtype } from './npz-format.js';
export { NpzFormatError, checkNpzCrc, readNpzData, readNpzEntries, type NpzEntry } from './npz-read.js';

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
