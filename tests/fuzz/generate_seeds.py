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


def write(directory, seeds):
    path = os.path.join(HERE, "corpus", directory)
    os.makedirs(path, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(path, name), "wb") as seed:
            seed.write(data)


if __name__ == "__main__":
    write("virtqueue_fuzz", virtqueue_seeds())
    write("block_request_fuzz", block_seeds())
