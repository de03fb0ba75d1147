#!/usr/bin/env python3
"""Writes the seed corpora for the fuzz targets in tests/fuzz/corpus/.

The seeds are small, well-formed (and a few deliberately broken) inputs in the
formats documented at the top of each *_fuzz.cpp, so the fuzzer starts from
real rings and requests instead of random bytes. Run it again after changing a
format; the replay tests run every file of the corpus.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- virtqueue_fuzz ----------------------------------------------------------
# Header: size log2, flags, next_available, next_used. Then guest RAM: region A
# (8 KiB at 0), region B (8 KiB at 16 KiB) continuing in the image at offset 8 KiB.
NEXT, WRITE, INDIRECT = 1, 2, 4
DESC, AVAIL, USED = 0x000, 0x400, 0x500
REGION_BYTES = 8 << 10
REGION_B_BASE = 16 << 10


class Ram:
    def __init__(self, size=REGION_BYTES):
        self.image = bytearray(size)

    def put(self, guest_address, data):
        offset = guest_address if guest_address < REGION_BYTES else guest_address - REGION_B_BASE + REGION_BYTES
        end = offset + len(data)
        if end > len(self.image):
            self.image.extend(bytes(end - len(self.image)))
        self.image[offset:end] = data

    def descriptor(self, where, address, length, flags=0, next_index=0):
        self.put(where, struct.pack("<QIHH", address, length, flags, next_index))

    def desc(self, index, address, length, flags=0, next_index=0):
        self.descriptor(DESC + 16 * index, address, length, flags, next_index)

    def offer(self, size, available_index, heads, start=0):
        for i, head in enumerate(heads):
            self.put(AVAIL + 4 + 2 * ((start + i) % size), struct.pack("<H", head))
        self.put(AVAIL + 2, struct.pack("<H", available_index))


def virtqueue_seed(size_log2, flags, next_available, next_used, ram):
    # RAM the image does not cover is zero, so trailing zeros need not be stored.
    return struct.pack("<BBHH", size_log2, flags, next_available, next_used) + bytes(ram.image).rstrip(b"\0")


def virtqueue_seeds():
    seeds = {}

    ram = Ram()  # a block-style request and a transmit-style buffer
    ram.desc(0, 0x800, 16, NEXT, 1)
    ram.desc(1, 0x900, 512, WRITE | NEXT, 2)
    ram.desc(2, 0xB00, 1, WRITE)
    ram.desc(3, 0xC00, 8)
    ram.offer(8, 2, [0, 3])
    seeds["direct_chains"] = virtqueue_seed(3, 0, 0, 0, ram)

    ram = Ram()  # EVENT_IDX with an indirect table, used_event set
    ram.descriptor(0x1000, 0x800, 16, NEXT, 1)
    ram.descriptor(0x1010, 0x900, 512, WRITE | NEXT, 2)
    ram.descriptor(0x1020, 0x1100, 1, WRITE)
    ram.desc(0, 0x1000, 48, INDIRECT)
    ram.offer(16, 1, [0])
    ram.put(AVAIL + 4 + 2 * 16, struct.pack("<H", 0))
    seeds["indirect_event_idx"] = virtqueue_seed(4, 1 | 2, 0, 0, ram)

    ram = Ram()  # direct descriptors followed by an indirect one; a buffer in region B
    ram.desc(0, 0x800, 16, NEXT, 1)
    ram.desc(1, 0x1000, 32, INDIRECT)
    ram.descriptor(0x1000, REGION_B_BASE + 0x100, 64, WRITE | NEXT, 1)
    ram.descriptor(0x1010, REGION_B_BASE + 0x200, 64, WRITE)
    ram.put(REGION_B_BASE + 0x300, b"\0")
    ram.offer(4, 1, [0])
    seeds["direct_then_indirect_region_b"] = virtqueue_seed(2, 2, 0, 0, ram)

    ram = Ram()  # a descriptor loop
    ram.desc(0, 0x800, 16, NEXT, 1)
    ram.desc(1, 0x800, 16, NEXT, 0)
    ram.offer(2, 1, [0])
    seeds["loop"] = virtqueue_seed(1, 0, 0, 0, ram)

    ram = Ram()  # indices wrapping past 65535
    for i in range(4):
        ram.desc(i, 0x800 + 0x40 * i, 0x40, WRITE)
    ram.offer(4, 1, [0, 1], start=65535)
    seeds["wraparound"] = virtqueue_seed(2, 1, 65535, 65535, ram)

    ram = Ram()  # the driver claims more buffers than the ring holds
    ram.desc(0, 0x800, 16)
    ram.offer(4, 9, [0, 0, 0, 0])
    seeds["index_jump"] = virtqueue_seed(2, 0, 0, 0, ram)

    ram = Ram()  # a buffer running off the end of region A into the hole
    ram.desc(0, REGION_BYTES - 8, 16, WRITE)
    ram.offer(1, 1, [0])
    seeds["outside_ram"] = virtqueue_seed(0, 0, 0, 0, ram)
    return seeds


# ---- block_request_fuzz ------------------------------------------------------
IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES, UNKNOWN, RAW = range(8)
B_INDIRECT, B_NO_WRITABLE, B_SHORT_HEADER, B_STATUS_SHARES, B_CORRUPT = 8, 16, 32, 64, 128
SECTORS = (64 << 10) // 512


def record(shape, sector=0, out=b"", in_length=0, piece=0, sector_mode=3, raw_type=None, header_length=None):
    data = bytes([shape])
    if shape & 7 == RAW:
        data += struct.pack("<I", raw_type)
    if shape & B_SHORT_HEADER:
        data += bytes([header_length])
    data += bytes([sector_mode])
    if sector_mode == 0:
        data += struct.pack("<B", sector)
    elif sector_mode == 1:  # the target computes capacity - byte
        data += struct.pack("<B", SECTORS - sector)
    elif sector_mode == 2:
        data += struct.pack("<Q", sector)
    else:
        data += struct.pack("<H", sector)
    data += struct.pack("<HHB", len(out), in_length, piece) + out
    return data


def segment(sector, count, flags=0):
    return struct.pack("<QII", sector, count, flags)


def block_seeds():
    pattern = bytes((i * 7) & 0xFF for i in range(1024))
    return {
        "read": bytes([0]) + record(IN, 3, in_length=1024),
        "write_read": bytes([0]) + record(OUT, 5, pattern[:512]) + record(IN, 5, in_length=512),
        "flush_get_id": bytes([0]) + record(FLUSH) + record(GET_ID, in_length=20),
        "discard_write_zeroes": bytes([0])
        + record(DISCARD, out=segment(10, 4))
        + record(WRITE_ZEROES, out=segment(0, 1, 1) + segment(SECTORS - 1, 1)),
        "read_only": bytes([2]) + record(OUT, 1, pattern) + record(IN, 1, in_length=1024)
        + record(WRITE_ZEROES, out=segment(0, 8)),
        "indirect_split_event_idx": bytes([1])
        + record(IN | B_INDIRECT, 0, in_length=4096, piece=100)
        + record(OUT | B_STATUS_SHARES, 8, pattern, piece=7),
        "malformed": bytes([0])
        + record(OUT | B_NO_WRITABLE, 0, pattern[:512])
        + record(IN | B_SHORT_HEADER, 0, in_length=512, header_length=8)
        + record(RAW, raw_type=0x1234, in_length=16),
        "out_of_range": bytes([0])
        + record(IN, 0xFFFFFFFFFFFFFFFF, in_length=512, sector_mode=2)
        + record(IN, SECTORS, in_length=512, sector_mode=1)
        + record(OUT, SECTORS - 1, pattern, sector_mode=3)
        + record(IN, 0, in_length=100),
        "ring_loop": bytes([0]) + record(FLUSH) + record(FLUSH | B_CORRUPT),
    }


# ---- gpu_command_fuzz --------------------------------------------------------
# Header: flags (bit 0 EVENT_IDX, bit 1 EDID, bits 2-3 scanouts - 1). Records:
# op (bits 0-3 command, 16 split, 32 indirect, 64 fence, 128 corrupt), response
# size selector, body length, body. Framebuffer RAM: 256 KiB at 512 KiB.
(G_INFO, G_CREATE, G_UNREF, G_SCANOUT, G_FLUSH, G_TRANSFER, G_ATTACH, G_DETACH, G_CAPSET, G_EDID,
 G_CURSOR, G_MOVE, G_RAW, G_RESIZE, G_RESET, G_REPLAY) = range(16)
G_SPLIT, G_INDIRECT, G_FENCE, G_CORRUPT = 16, 32, 64, 128
FB = 512 << 10
XRGB, ARGB, RGBA, XBGR = 2, 1, 67, 68


def gpu(op, body=b"", response=3):
    return bytes([op, response, len(body)]) + body


def words(*values):
    return struct.pack("<%dI" % len(values), *values)


def rect(x, y, w, h):
    return words(x, y, w, h)


def create(rid, fmt, w, h):
    return gpu(G_CREATE, words(rid, fmt, w, h))


def attach(rid, entries):
    return gpu(G_ATTACH, words(rid, len(entries)) + b"".join(struct.pack("<QII", a, n, 0) for a, n in entries))


def transfer(rid, x, y, w, h, offset, op=0):
    return gpu(G_TRANSFER | op, rect(x, y, w, h) + struct.pack("<QII", offset, rid, 0))


def scanout(sid, rid, x, y, w, h):
    return gpu(G_SCANOUT, rect(x, y, w, h) + words(sid, rid))


def flush(rid, x, y, w, h):
    return gpu(G_FLUSH, rect(x, y, w, h) + words(rid, 0))


def cursor(op, sid, x, y, rid=0, hx=0, hy=0):
    return gpu(op, words(sid, x, y, 0, rid, hx, hy, 0), response=255)


def gpu_seeds():
    fb = [(FB, 32 * 24 * 4 // 2 + 2), (FB + 0x10000, 32 * 24 * 4 // 2 - 2)]
    return {
        "fbdev": bytes([2])
        + gpu(G_INFO, response=0) + gpu(G_EDID, words(0, 0), response=0)
        + create(1, XRGB, 32, 24) + attach(1, fb) + transfer(1, 0, 0, 32, 24, 0)
        + scanout(0, 1, 0, 0, 32, 24) + flush(1, 0, 0, 32, 24)
        + transfer(1, 4, 3, 8, 5, 3 * 128 + 16, G_FENCE) + flush(1, 4, 3, 8, 5)
        + gpu(G_DETACH, words(1, 0)) + gpu(G_UNREF, words(1, 0)),
        "cursor": bytes([0])
        + create(2, ARGB, 64, 64) + attach(2, [(FB, 64 * 64 * 4)]) + transfer(2, 0, 0, 64, 64, 0, G_FENCE)
        + cursor(G_CURSOR, 0, 100, 200, 2, 5, 6) + cursor(G_MOVE, 0, 0xFFFFFFFB, 7)
        + cursor(G_CURSOR, 0, 1, 1, 0) + cursor(G_CURSOR, 3, 1, 1, 2),
        "errors": bytes([2])
        + create(0, XRGB, 8, 8) + create(3, 999, 8, 8) + create(3, XRGB, 0xFFFFFFFF, 0xFFFFFFFF)
        + create(3, XRGB, 16384, 16384) + create(3, XRGB, 8, 8) + create(3, XRGB, 8, 8)
        + attach(3, [(0xFFFFFFFFFFFFFFF0, 4096)]) + attach(3, [(FB + (4 << 20), 64)])
        + gpu(G_ATTACH, words(3, 1 << 20)) + gpu(G_ATTACH, words(3, 4) + struct.pack("<QII", FB, 64, 0))
        + attach(3, [(FB, 64), (1 << 40, 64)])
        + transfer(3, 0, 0, 8, 8, 0) + attach(3, [(FB, 256)])
        + transfer(3, 0xFFFFFFFF, 0, 2, 1, 0) + transfer(3, 0, 0, 8, 8, 1 << 63) + transfer(3, 0, 7, 8, 1, 240)
        + scanout(9, 3, 0, 0, 8, 8) + scanout(0, 7, 0, 0, 8, 8) + scanout(0, 3, 0x80000000, 0, 0x80000000, 8)
        + flush(3, 7, 7, 2, 2) + gpu(G_UNREF, words(42, 0)) + gpu(G_CAPSET, words(0, 0))
        + gpu(G_RAW, words(0x0200) + b"\0" * 8) + gpu(G_RAW, words(0x0999))
        + gpu(G_INFO, response=10) + gpu(G_INFO, response=255) + gpu(G_EDID, words(5, 0), response=0)
        + gpu(G_CREATE, words(4, XRGB)) + gpu(G_CURSOR, words(0, 0, 0, 0, 3, 0, 0, 0)),
        "multihead_resize": bytes([1 | 2 | (1 << 2)])
        + create(1, XRGB, 64, 16) + attach(1, [(FB, 64 * 16 * 4)]) + transfer(1, 0, 0, 64, 16, 0, G_SPLIT)
        + scanout(0, 1, 0, 0, 32, 16) + scanout(1, 1, 32, 0, 32, 16) + flush(1, 16, 0, 32, 16)
        + gpu(G_RESIZE, words(1, 1920, 1080)) + gpu(G_RESIZE, words(0, 10, 10)) + gpu(G_RESIZE, words(2, 800, 600))
        + gpu(G_INFO | G_INDIRECT, response=0) + gpu(G_REPLAY) + gpu(G_RESET)
        + create(1, XRGB, 8, 8) + scanout(0, 1, 0, 0, 8, 8) + gpu(G_REPLAY),
        "formats": bytes([0])
        + create(1, RGBA, 16, 4) + attach(1, [(FB + 3, 256)]) + transfer(1, 0, 0, 16, 4, 0)
        + create(2, XBGR, 4, 4) + attach(2, [(FB, 20), (FB + 64, 44)]) + transfer(2, 1, 1, 3, 3, 20, G_INDIRECT)
        + scanout(0, 2, 0, 0, 4, 4) + flush(2, 0, 0, 4, 4),
        "ring_loop": bytes([0]) + create(1, XRGB, 8, 8) + gpu(G_INFO | G_CORRUPT, response=0),
    }


def write(directory, seeds):
    path = os.path.join(HERE, "corpus", directory)
    os.makedirs(path, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(path, name), "wb") as seed:
            seed.write(data)


if __name__ == "__main__":
    write("virtqueue_fuzz", virtqueue_seeds())
    write("block_request_fuzz", block_seeds())
    write("gpu_command_fuzz", gpu_seeds())
