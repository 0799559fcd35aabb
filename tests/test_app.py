"""app.py without a server: the page's wiring, the no-weights message, handlers called directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from _tiny_weights import make_tiny_weights

import app
from talking_head.errors import NoFaceError
from talking_head.face.landmarks import get_detector
from talking_head.media.video import probe_video
from talking_head.web.inputs import RenderRequest
from talking_head.web.job import prepare_job
from talking_head.web.limits import AppLimits, gpu_duration
from talking_head.web.state import AppState, load_app_weights

MOTION = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """Each test installs its own state; none leaks into other test modules."""
    yield
    app._STATE = None


def _state(weights_source: str | Path) -> AppState:
    return AppState(
        weights=load_app_weights(str(weights_source), device="cpu"),
        limits=AppLimits(max_driving_seconds=2.0),
        detector=get_detector("dlib"),
    )


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("app") / "weights")


def _texts(demo: gr.Blocks) -> str:
    return "\n".join(
        str(getattr(block, "value", "")) for block in demo.blocks.values() if isinstance(block, gr.Markdown)
    )


def test_page_wires_the_animate_endpoint(tiny_weights: Path) -> None:
    demo = app.build_demo(_state(tiny_weights))
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert {"Result", "Status", "Fine-tuning steps", "Detected faces", "Motion"} <= labels
    public = {dep.api_name for dep in demo.fns.values() if dep.api_visibility == "public"}
    assert public == {"animate", "edit", "landmarks"}  # previews, clearing and slider moves stay private
    animate = next(dep for dep in demo.fns.values() if dep.api_name == "animate")
    assert len(animate.inputs) == 14 and len(animate.outputs) == 3  # 10 settings, then 4 motion controls
    assert "64 px" in _texts(demo) and "not loaded" not in _texts(demo)


def test_page_without_weights_says_how_to_fix_it(tmp_path: Path, astronaut_path: Path) -> None:
    demo = app.build_demo(_state(tmp_path / "missing"))
    text = _texts(demo)
    assert (
        "The model is not loaded" in text
        and "TALKING_HEAD_WEIGHTS" in text
        and str(tmp_path / "missing") in text
    )
    with pytest.raises(gr.Error, match="No model weights could be loaded.*TALKING_HEAD_WEIGHTS"):
        app.animate([str(astronaut_path)], None, str(MOTION))


def test_animate_handler_returns_both_videos_and_status(tiny_weights: Path, astronaut_path: Path) -> None:
    app.build_demo(_state(tiny_weights))
    video, overlay, status = app.animate(
        [str(astronaut_path)], None, str(MOTION), steps=0, max_seconds=0.4, output_size=256
    )
    assert probe_video(video).num_frames == 10 and probe_video(video).size == (256, 256)
    assert probe_video(overlay).num_frames == 10
    assert status.startswith("10 frames rendered")


def test_handler_errors_are_messages_not_tracebacks(
    tiny_weights: Path, astronaut_path: Path, tmp_path: Path
) -> None:
    app.build_demo(_state(tiny_weights))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(gr.Error) as caught:
        app.animate([str(notes)], None, str(MOTION))
    assert caught.value.message.startswith("Photo 1 ('notes.txt') is not an image")
    with pytest.raises(gr.Error, match="Choose a driving motion"):
        app.animate([str(astronaut_path)], None, None)


def test_unexpected_errors_become_a_short_message() -> None:
    @app.user_errors
    def broken() -> None:
        raise ZeroDivisionError("internal detail")

    @app.user_errors
    def no_face() -> None:
        raise NoFaceError("no face was found; use another photo")

    with pytest.raises(gr.Error) as caught:
        broken()
    assert "ZeroDivisionError" in caught.value.message and "internal detail" not in caught.value.message
    with pytest.raises(gr.Error) as caught:
        no_face()
    assert caught.value.message == "No face was found; use another photo"


def test_previews_and_gpu_duration(tiny_weights: Path, astronaut_path: Path) -> None:
    app.build_demo(_state(tiny_weights))
    items = app.preview_photos([str(astronaut_path)])
    assert len(items) == 1 and items[0][1].startswith("photo 1 (astronaut.png)")
    assert app.preview_photos(None) == []
    assert app.preview_motion(str(MOTION)) == str(MOTION.with_suffix(".mp4"))
    state = app.load_state()
    job = prepare_job(
        RenderRequest(photos=(str(astronaut_path),), driving=str(MOTION), steps=10),
        state.limits,
        state.detector,
        64,
    )
    assert app._gpu_seconds(job) == gpu_duration(10, job.num_frames)


def test_command_line_options() -> None:
    args = app._parse_args(["--port", "7999", "--share", "--host", "0.0.0.0"])
    assert (args.port, args.share, args.host) == (7999, True, "0.0.0.0")
