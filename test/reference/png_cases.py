#!/usr/bin/env python3
"""Independent reference for decodePng: writes PNG files from given samples
and decodes them with PIL into the 8-bit pixels decodePng documents.

    png_cases.py < CASES.json > RESULTS.json

Each case: colorType, bitDepth, interlaced, width, height, samples (base64 of
little-endian uint16, row-major, samples per pixel interleaved), palette
(base64 RGB bytes, palette images), transparency (tRNS: [key] for gray,
[r, g, b] for RGB, alpha values for a palette), writer ("pil": PIL's own
encoder, for the formats it writes; "direct": a plain writer below, for the
ones it cannot: 2- and 4-bit gray, 16-bit color, Adam7), seed (the direct
writer's choice of filter per row and of IDAT chunk sizes).

Each result: png (base64, the file), channels and data (base64): what PIL
decodes, turned into 8-bit channels by the rules decodePng documents (gray
below 8 bits scaled to 0..255, 16 bits to round(v * 255 / 65535), palette
expanded, alpha from an alpha channel or tRNS). PIL keeps only the high byte
of 16-bit color samples, so for those the direct writer also writes the file
with each sample's bytes swapped, and PIL's reading of that gives the low
bytes. Every case also checks that PIL reads back exactly the samples given.
"""
import base64
import io
import json
import random
import struct
import sys
import zlib
from array import array

from PIL import Image

SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def pack(values, depth):
    if depth == 8:
        return bytes(values)
    if depth == 16:
        return b"".join(struct.pack(">H", v) for v in values)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(values), per):
        byte = 0
        for j in range(per):
            byte = (byte << depth) | (values[i + j] if i + j < len(values) else 0)
        out.append(byte)
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filtered(kind, row, prev, bpp):
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        predicted = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - predicted) & 0xFF)
    return bytes(out)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def scanlines(case, samples, rng):
    w, h, depth, spp = case["width"], case["height"], case["bitDepth"], SAMPLES[case["colorType"]]
    bpp = max(1, spp * depth // 8)
    out = bytearray()
    for x0, y0, dx, dy in ADAM7 if case["interlaced"] else [(0, 0, 1, 1)]:
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue
        prev = None
        for y in ys:
            row = pack([samples[(y * w + x) * spp + c] for x in xs for c in range(spp)], depth)
            prev = prev or bytes(len(row))
            out += filtered(rng.randrange(5), row, prev, bpp)
            prev = row
    return bytes(out)


def write_direct(case, samples, seed):
    rng = random.Random(seed)
    ct, depth = case["colorType"], case["bitDepth"]
    ihdr = struct.pack(">IIBBBBB", case["width"], case["height"], depth, ct, 0, 0, 1 if case["interlaced"] else 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"gAMA", struct.pack(">I", 45455))
    if ct == 3:
        out += chunk(b"PLTE", base64.b64decode(case["palette"]))
    trns = case.get("transparency")
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns) if ct == 3 else b"".join(struct.pack(">H", v) for v in trns))
    data = zlib.compress(scanlines(case, samples, rng))
    at = 0
    while at < len(data):  # the image data split over IDAT chunks of random sizes
        size = rng.randint(1, max(1, len(data) // 2))
        out += chunk(b"IDAT", data[at : at + size])
        at += size
    return out + chunk(b"tEXt", b"Comment\0written for a test") + chunk(b"IEND", b"")


def write_pil(case, samples):
    ct, depth, w, h = case["colorType"], case["bitDepth"], case["width"], case["height"]
    size, options = (w, h), {}
    if ct == 0 and depth == 1:
        im = Image.frombytes("1", size, b"".join(pack(samples[y * w : (y + 1) * w], 1) for y in range(h)))
    elif ct == 0 and depth == 16:
        im = Image.frombytes("I;16", size, array("H", samples).tobytes()).convert("I")
    elif ct == 3:
        im = Image.frombytes("P", size, bytes(samples))
        im.putpalette(base64.b64decode(case["palette"]))
        options["bits"] = depth
    else:
        im = Image.frombytes({0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}[ct], size, bytes(samples))
    trns = case.get("transparency")
    if trns is not None:
        options["transparency"] = bytes(trns) if ct == 3 else trns[0] if ct == 0 else tuple(trns)
    buf = io.BytesIO()
    im.save(buf, "PNG", **options)
    return buf.getvalue()


def pil_open(png):
    Image.open(io.BytesIO(png)).verify()  # chunk CRCs and structure
    im = Image.open(io.BytesIO(png))
    im.load()
    return im


def pil_samples(im, ct, depth):
    """The samples PIL decoded, as stored: one list, samples per pixel interleaved (16-bit color: high bytes)."""
    pixels = list(im.getdata())
    if ct == 0:
        step = 255 // ((1 << depth) - 1) if depth < 8 else 1
        return [p // step for p in pixels]
    if ct == 3:
        return pixels
    if ct == 4 and im.mode == "RGBA":  # PIL reads 16-bit gray + alpha as RGBA
        pixels = [(p[0], p[3]) for p in pixels]
    return [v for p in pixels for v in p]


def eight(v, depth):
    if depth == 16:
        return (2 * 255 * v + 65535) // (2 * 65535)
    return v * 255 // ((1 << depth) - 1)


def expected(im, ct, depth, values):
    """decodePng's output from PIL's samples and PIL's reading of PLTE and tRNS."""
    trns = im.info.get("transparency")
    if ct == 3:
        palette = im.getpalette()
        alpha = [255] * 256
        if isinstance(trns, int):
            alpha[trns] = 0
        elif trns is not None:
            alpha[: len(trns)] = list(trns)
        entry = lambda i: palette[3 * i : 3 * i + 3] + ([alpha[i]] if trns is not None else [])
        return (4 if trns is not None else 3), [c for i in values for c in entry(i)]
    spp = SAMPLES[ct]
    pixels = [values[i : i + spp] for i in range(0, len(values), spp)]
    if ct in (0, 2) and trns is not None:
        key = [trns] if ct == 0 else list(trns)
        out = [[eight(v, depth) for v in (p * 3 if ct == 0 else p)] + [0 if p == key else 255] for p in pixels]
        return 4, [c for p in out for c in p]
    if ct == 4:
        return 4, [eight(v, depth) for g, a in pixels for v in (g, g, g, a)]
    return spp, [eight(v, depth) for v in values]


def run(case):
    ct, depth = case["colorType"], case["bitDepth"]
    samples = list(array("H", base64.b64decode(case["samples"])))
    direct = case["writer"] == "direct"
    png = write_direct(case, samples, case["seed"]) if direct else write_pil(case, samples)
    im = pil_open(png)
    values = pil_samples(im, ct, depth)
    if depth == 16 and ct != 0:  # PIL gave the high bytes; the swapped file gives the low ones
        swapped = write_direct(case, [((v & 0xFF) << 8) | (v >> 8) for v in samples], case["seed"])
        values = [hi << 8 | lo for hi, lo in zip(values, pil_samples(pil_open(swapped), ct, depth))]
    if values != samples:
        raise SystemExit(f"PIL reads other samples than were written: {json.dumps({k: v for k, v in case.items() if k != 'samples'})}")
    channels, data = expected(im, ct, depth, values)
    return {"png": base64.b64encode(png).decode(), "channels": channels, "data": base64.b64encode(bytes(data)).decode()}


if __name__ == "__main__":
    json.dump([run(case) for case in json.load(sys.stdin)], sys.stdout)
