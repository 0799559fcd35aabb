"""Bad inputs made in the test: image headers that claim huge sizes, text named like media, bad tracks."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR for an 8-bit RGB ``width × height`` image, with no pixel data.

    Enough for a decoder to read the size (what a pixel-count check before decoding needs),
    and a few dozen bytes instead of the hundreds of MB the real image would decode to.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def write_uniform_png(path: Path, width: int, height: int, value: int = 128) -> Path:
    """A valid, fully decodable gray RGB PNG written row by row (little memory, small file)."""
    row = b"\x00" + bytes([value]) * (3 * width)  # filter byte 0, then RGB
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )
    return path


def write_track_npz(path: Path, frames: int = 10, **overrides: object) -> Path:
    """A landmark-track .npz like LandmarkTrack.save writes, with any array replaced or removed (None)."""
    rng = np.random.default_rng(0)
    points = (100 + 20 * rng.standard_normal((frames, 68, 2))).astype(np.float32)
    arrays: dict[str, object] = {
        "format_version": np.int64(1),
        "points": points,
        "boxes": np.tile(np.array([60, 60, 140, 140], dtype=np.float32), (frames, 1)),
        "found": np.ones(frames, dtype=bool),
        "fps": np.float64(25.0),
        "backend": np.array("dlib"),
        "frame_size": np.array([256, 256], dtype=np.int64),
        "long_gaps": np.zeros((0, 2), dtype=np.int64),
    }
    for key, value in overrides.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path
