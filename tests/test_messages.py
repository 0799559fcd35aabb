"""What the page and the terminal say: no doubled words, no reST markup, no web advice in a terminal, the wait."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
from _tiny_weights import make_tiny_weights

import app
from talking_head.__main__ import COMMANDS, main
from talking_head.face.landmarks import get_detector
from talking_head.media.video_writer import VideoWriter
from talking_head.web.limits import AppLimits
from talking_head.web.queue_time import ARRIVED_KEY, QUEUE_STAGE, ArrivalTimes, queue_seconds, with_queue_time
from talking_head.web.state import AppState, load_app_weights

DOUBLED_WORD = re.compile(r"\b(\w+) \1\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("messages") / "weights")


def test_the_banner_names_the_weights_once(weights: Path) -> None:
    state = AppState(load_app_weights(str(weights), device="cpu"), AppLimits(), get_detector("dlib"))
    banner = app._weights_banner(state)
    assert f"Model: {weights}/ (64 px, cpu)" in banner
    assert not DOUBLED_WORD.search(banner), banner


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_no_rest_markup(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage:" in text and "`" not in text, text


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_errors_never_ask_to_upload(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    motion = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"
    common = ["--out", str(tmp_path / "out.mp4"), "--weights", str(weights), "--landmarks", "dlib"]
    error = _cli_error(["animate", "--photos", str(notes), "--driving", str(motion), *common], capsys)
    assert "is not an image" in error and "upload" not in error.lower(), error

    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 10) as writer:
        for shade in range(10):
            writer.write(np.full((64, 64, 3), 20 * shade, np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:1500])
    error = _cli_error(["landmarks", str(cut), "--out", str(tmp_path / "overlay.mp4")], capsys)
    assert "incomplete" in error and "upload" not in error.lower(), error


def test_queue_time_is_stamped_on_arrival_and_read_back() -> None:
    seen: dict = {}

    async def inner(scope, receive, send) -> None:
        seen.update(scope)

    asyncio.run(ArrivalTimes(inner)({"type": "http"}, None, None))
    arrived = seen["state"][ARRIVED_KEY]

    class Request:
        scope = {"state": {ARRIVED_KEY: arrived}}

    assert queue_seconds(Request(), now=arrived + 12.5) == pytest.approx(12.5)
    assert queue_seconds(None) is None  # a direct call, not through the server
    assert list(with_queue_time({"landmarks": 1.0}, 12.5)) == [QUEUE_STAGE, "landmarks"]
    assert list(with_queue_time({"landmarks": 1.0}, 0.01)) == ["landmarks"]  # no wait worth a word
