#!/usr/bin/env python3
"""Writes the seed corpus of sound_request_fuzz (tests/fuzz/corpus/sound_request_fuzz/).

The input format is documented at the top of sound_request_fuzz.cpp: a flags
byte, then records of (op, size, body length, body). The seeds walk the
virtio-snd PCM lifecycle as the Linux driver does, with small periods so that
whole messages fit in one record, plus malformed requests and a broken ring.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "sound_request_fuzz")

CONTROL, TX, RX, CLOCK, RESET = 0, 1, 2, 3, 4
SPLIT, INDIRECT, LOOP = 16, 32, 128
JACK_INFO, JACK_REMAP = 1, 2
PCM_INFO, SET_PARAMS, PREPARE, RELEASE, START, STOP = 0x100, 0x101, 0x102, 0x103, 0x104, 0x105
CHMAP_INFO = 0x200
S16, S32, FLOAT = 5, 17, 19
R44100, R48000 = 6, 7
PERIOD = 64  # 16 stereo S16 frames
BUFFER = 4 * PERIOD


def record(op, size, body):
    assert len(body) < 256
    return bytes([op, size, len(body)]) + body


def control(code, *words, tail=b"", size=4, flags=0):
    return record(CONTROL | flags, size, struct.pack("<" + "I" * (1 + len(words)), code, *words) + tail)


def query(code, start, count, item):
    return control(code, start, count, item, size=min(255, 4 + count * item))


def set_params(stream, buffer=BUFFER, period=PERIOD, channels=2, fmt=S16, rate=R48000, features=0):
    return control(SET_PARAMS, stream, buffer, period, features, tail=bytes([channels, fmt, rate, 0]))


def tx(stream, frames, status=8, flags=0):
    return record(TX | flags, status, struct.pack("<I", stream) + frames)


def rx(stream, sixteens, flags=0):
    return record(RX | flags, sixteens, struct.pack("<I", stream))


def clock(ms):
    return record(CLOCK, 0, bytes([ms]))


def sine(frames):
    import math
    out = b""
    for i in range(frames):
        sample = int(12000 * math.sin(2 * math.pi * i / 16))
        out += struct.pack("<hh", sample, sample)
    return out


def seeds():
    s = {}
    s["info_queries"] = bytes([0]) + query(JACK_INFO, 0, 2, 24) + query(PCM_INFO, 0, 2, 32) + query(CHMAP_INFO, 0, 2, 24)
    period = sine(PERIOD // 4)
    s["playback"] = (bytes([0]) + set_params(0) + control(PREPARE, 0) + tx(0, period) + tx(0, period)
                     + control(START, 0) + tx(0, period) + clock(1) + clock(1) + tx(0, period) + clock(5)
                     + control(STOP, 0) + control(RELEASE, 0))
    s["capture"] = (bytes([0]) + set_params(1, fmt=FLOAT, rate=R44100, channels=1, buffer=256, period=64)
                    + control(PREPARE, 1) + rx(1, 4) + rx(1, 4) + control(START, 1) + clock(2) + clock(2)
                    + control(STOP, 1) + control(START, 1) + clock(3) + control(STOP, 1) + control(RELEASE, 1))
    s["malformed"] = (bytes([0]) + control(START, 0) + control(PREPARE, 5) + tx(0, period) + set_params(0, fmt=4)
                      + set_params(0, buffer=100, period=64) + set_params(2) + query(PCM_INFO, 1, 2, 32)
                      + control(JACK_REMAP, 0, 1, 0) + record(CONTROL, 4, b"\x01") + record(CONTROL, 0, b"")
                      + control(0x300, 0) + set_params(0) + control(PREPARE, 0) + tx(1, period) + tx(0, period[:6])
                      + tx(0, period, status=4) + rx(0, 2) + control(START, 0) + control(START, 0))
    s["split_indirect_event_idx"] = bytes([1]) + (control(SET_PARAMS, 0, BUFFER, PERIOD, 0, tail=bytes([2, S32, R48000, 0]), flags=SPLIT)
                                      + control(PREPARE, 0, flags=INDIRECT) + control(START, 0, flags=SPLIT | INDIRECT)
                                      + tx(0, sine(8) + sine(8), flags=SPLIT) + tx(0, sine(16), flags=INDIRECT)
                                      + clock(1) + clock(1) + control(STOP, 0) + control(RELEASE, 0))
    s["reset_midstream"] = (bytes([0]) + set_params(0) + control(PREPARE, 0) + control(START, 0) + tx(0, period)
                            + record(RESET, 0, b"") + tx(0, period) + set_params(0) + control(PREPARE, 0) + clock(2))
    s["ring_loop"] = bytes([0]) + set_params(0) + record(CONTROL | LOOP, 4, struct.pack("<II", PREPARE, 0))
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
