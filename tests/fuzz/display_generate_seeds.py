#!/usr/bin/env python3
"""Writes the seed corpus of display_message_fuzz in corpus/display_message_fuzz/.

Each seed is [read size seed] followed by a display-link stream
(display/docs/display-protocol.md): a 4-byte little-endian length, then JSON.
Most are sessions a VMM could really send; a few are broken on purpose.
"""

import base64
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "display_message_fuzz")


def frame(message):
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return struct.pack("<I", len(body)) + body


def hello(scanouts=1):
    return {"type": "hello", "protocol": 1, "vm_name": "fuzz", "vm_uuid": "", "scanouts": scanouts}


def surface(width, height, stride, offset=0, scanout=0):
    return {"type": "surface", "scanout": scanout, "width": width, "height": height, "stride": stride,
            "format": "XRGB8888", "offset": offset, "fds": 1}


def damage(*rects, scanout=0):
    return {"type": "damage", "scanout": scanout, "rects": [list(r) for r in rects]}


def cursor(width, height, hot_x=0, hot_y=0):
    pixels = bytes((i * 37) & 0xff for i in range(width * height * 4))
    return {"type": "cursor", "scanout": 0, "x": 10, "y": 20, "visible": True, "hot_x": hot_x, "hot_y": hot_y,
            "width": width, "height": height, "pixels": base64.b64encode(pixels).decode()}


def session(read_size, *messages):
    return bytes([read_size]) + b"".join(frame(m) for m in messages)


SEEDS = {
    "hello_only": session(63, hello()),
    # 64 KiB memfd: 128x128 at stride 512 fits exactly.
    "surface_and_damage": session(7, hello(), surface(128, 128, 512), damage((0, 0, 16, 16), (100, 120, 60, 60))),
    "surface_with_offset": session(0, hello(), surface(64, 64, 256, 4096), damage((0, 0, 64, 64))),
    "surface_too_big": session(31, hello(), surface(640, 480, 2560)),
    "two_scanouts": session(15, hello(2), surface(32, 32, 128, 0, 1), damage((1, 1, 2, 2), scanout=1),
                            {"type": "disable", "scanout": 1}, damage((0, 0, 1, 1), scanout=1)),
    "cursor_shape_then_move": session(3, hello(), cursor(8, 8, 3, 4),
                                      {"type": "cursor", "scanout": 0, "x": -5, "y": 9, "visible": False}),
    "modes": session(9, hello(), {"type": "modes", "scanout": 0, "preferred_width": 1024, "preferred_height": 768}),
    "resize_cycle": session(40, hello(), surface(128, 64, 512), damage((0, 0, 128, 64)), surface(64, 128, 256),
                            damage((0, 0, 128, 128))),
    "bad_length": bytes([1]) + frame(hello()) + struct.pack("<I", 0x7fffffff),
    "bad_json": session(5, hello(), b"{\"type\": \"damage\", \"scanout\": [[[["),
    "before_hello": session(2, damage((0, 0, 1, 1))),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
