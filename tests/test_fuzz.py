"""Fuzz the two loaders users feed directly: random and truncated bytes give a user error or a result, never a crash.

Bounded and seeded (a few hundred inputs, a few seconds), so it runs in CI on every push.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from _bad_inputs import write_track_npz
from PIL import Image

from talking_head.errors import TalkingHeadError
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.images import load_image

SEED = 14
CASES = 120  # per loader and kind of damage


def _variants(valid: bytes, rng: np.random.Generator) -> list[bytes]:
    """Truncations at random points, random byte flips, and pure noise, from one valid file."""
    cuts = [valid[: int(n)] for n in rng.integers(0, len(valid), CASES)]
    flips = []
    for _ in range(CASES):
        data = bytearray(valid)
        for position in rng.integers(0, len(data), rng.integers(1, 8)):
            data[position] = int(rng.integers(0, 256))
        flips.append(bytes(data))
    noise = [rng.integers(0, 256, int(rng.integers(0, 2000)), dtype=np.uint8).tobytes() for _ in range(CASES // 4)]
    return cuts + flips + noise


def _check_message(error: TalkingHeadError, folder: Path) -> None:
    message = str(error)
    assert message and str(folder) not in message and "allow_pickle" not in message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_photo_loader_survives_damaged_bytes(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(SEED)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, format=fmt)
    path = tmp_path / f"photo.{fmt.lower()}"
    for data in _variants(buffer.getvalue(), rng):
        path.write_bytes(data)
        try:
            image = load_image(path, max_side=64)
        except TalkingHeadError as error:
            _check_message(error, tmp_path)
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_track_loader_survives_damaged_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    valid = write_track_npz(tmp_path / "valid.npz", frames=20).read_bytes()
    path = tmp_path / "motion.npz"
    for data in _variants(valid, rng):
        path.write_bytes(data)
        try:
            track = LandmarkTrack.load(path)
        except TalkingHeadError as error:
            _check_message(error, tmp_path)
        else:
            assert track.points.shape[1:] == (68, 2) and np.isfinite(track.points).all() and track.fps > 0
