/**
 * The PNG file structure (PNG spec section 5): the signature and the chunks
 * after it, each length + type + data + CRC-32 over type and data. Writing
 * and reading both live here so the two agree on framing; what the chunks
 * mean is the encoder's and the decoder's business.
 */
import { crc32 } from 'node:zlib';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';

/** The eight bytes every PNG starts with. */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A chunk as read: its type, its data (a view into the file) and where it starts. */
export interface PngChunk {
  type: string;
  data: Buffer;
  /** Byte offset of the chunk's length field, for messages. */
  at: number;
}

/** Throws the error every malformed PNG gets: ERR_INVALID_ARGUMENT, prefixed so the reader knows which file format failed. */
export function badPng(why: string): never {
  throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `decodePng: ${why}`);
}

/** One chunk, framed and with its CRC. */
export function writeChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * The chunks of `bytes` after the signature, up to and including IEND,
 * each checked against its CRC before it is yielded. Whatever follows IEND
 * is ignored, as the spec allows.
 */
export function* readChunks(bytes: Buffer): Generator<PngChunk> {
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) badPng('not a PNG file (bad signature)');
  let pos = 8;
  for (;;) {
    if (pos + 12 > bytes.length) badPng(`truncated file: chunk header expected at byte ${pos}`);
    const length = bytes.readUInt32BE(pos);
    const type = bytes.toString('latin1', pos + 4, pos + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) badPng(`bad chunk type ${JSON.stringify(type)} at byte ${pos}`);
    if (pos + 12 + length > bytes.length) badPng(`truncated ${type} chunk at byte ${pos}`);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    const stored = bytes.readUInt32BE(pos + 8 + length);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + length)) !== stored) badPng(`CRC mismatch in ${type} chunk at byte ${pos}`);
    yield { type, data, at: pos };
    if (type === 'IEND') return;
    pos += 12 + length;
  }
}
