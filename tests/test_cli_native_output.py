"""``animate --output``: the whole photo at its own size (up to the limit) or the face crop at 256/512/1024."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tiny_weights import make_tiny_weights
from test_cli_animate import moving_astronaut_clip

from talking_head.__main__ import main
from talking_head.media.images import load_image
from talking_head.media.video import probe_video


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("tiny_weights"))


@pytest.mark.parametrize("output, limit", [("photo", 1024), ("photo", 320), ("crop-512", 1024)])
def test_animate_writes_the_chosen_output(
    output: str, limit: int, weights: Path, astronaut_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    clip = moving_astronaut_clip(tmp_path / "driving.mp4", astronaut_path, num_frames=4)
    out = tmp_path / "out.mp4"
    args = ["animate", "--photos", str(astronaut_path), "--driving", str(clip), "--out", str(out)]
    args += ["--weights", str(weights), "--landmarks", "dlib", "--output", output, "--output-limit", str(limit)]
    code = main(args)
    assert code == 0, capsys.readouterr()
    height, width = load_image(astronaut_path).shape[:2]
    if output == "photo":
        scale = min(1.0, limit / max(height, width))
        expected = (round(width * scale), round(height * scale))
    else:
        expected = (512, 512)
    size = probe_video(out).size
    assert abs(size[0] - expected[0]) <= 1 and abs(size[1] - expected[1]) <= 1  # even sizes for the encoder
    assert probe_video(out).num_frames == 4
