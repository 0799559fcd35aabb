"""Gradio page (interim): 68-point landmarks of a photo or a clip, until the talking-head demo lands.

Upload a photo or a clip; the page returns the overlay (the input with its
landmark drawing beside the rasterized landmark image the networks see) and a
status line. Only widgets and wiring live here; the work is done by
``talking_head.overlay``.

Run ``python app.py`` (http://127.0.0.1:7860); ``--host``, ``--port`` and
``--share`` override the defaults, which come from ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` when set.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np

from talking_head.errors import TalkingHeadError
from talking_head.landmarks import BACKENDS, get_detector
from talking_head.overlay import describe_track, landmark_overlay, media_kind

logger = logging.getLogger("talking_head.app")

REPO_ROOT = Path(__file__).resolve().parent
EXAMPLES = [str(REPO_ROOT / "examples" / "astronaut.png")]
# Landmarks are CPU-bound and the detectors serialize on a lock: one job at a time.
CONCURRENCY_LIMIT = 1
# Longest part of an uploaded clip that is processed (the slider's maximum).
MAX_CLIP_SECONDS = 60.0
DEFAULT_CLIP_SECONDS = 10.0
# Overlay videos older than this are deleted (Gradio keeps its own copy to serve).
OUTPUT_MAX_AGE_S = 3600.0
_OUTPUT_DIR = Path(tempfile.gettempdir()) / "talking-head-app"

DESCRIPTION = """\
# Talking head: face landmarks
Upload a **photo** or a short **clip** of a face. You get the input with its 68 landmarks drawn on it,
beside the rasterized landmark image that drives the talking-head networks
([Zakharov et al., ICCV 2019](https://arxiv.org/abs/1905.08233)). Clips keep their frame rate and sound.
The full talking-head demo replaces this page once trained weights are published.
"""


def run_landmarks(
    file_path: str | None,
    backend: str = "auto",
    max_seconds: float = DEFAULT_CLIP_SECONDS,
    progress: gr.Progress = gr.Progress(),
) -> tuple[np.ndarray | None, str | None, str]:
    """Event handler: (photo overlay or None, clip overlay path or None, status line).

    User errors (``TalkingHeadError``) become ``gr.Error`` with their message.
    """
    if not file_path:
        raise gr.Error("Upload a photo or a clip first.", print_exception=False)
    try:
        kind = media_kind(file_path)
        out = _new_output_path() if kind == "clip" else None
        detector = get_detector(backend)
        stages = {"landmarks": "Finding landmarks", "overlay": "Drawing the overlay"}
        result = landmark_overlay(
            file_path,
            detector,
            out=out,
            max_seconds=float(max_seconds),
            progress=lambda stage, done, total: progress((done, total), desc=stages.get(stage, stage), unit="frames"),
        )
    except TalkingHeadError as error:
        raise gr.Error(str(error), print_exception=False) from error
    status = f"{Path(file_path).name}: {describe_track(result.track)}"
    if result.kind == "photo":
        return result.overlay_image, None, status
    return None, str(result.overlay_path), status


def _new_output_path() -> Path:
    """A fresh overlay path in the app's output folder, after deleting overlays older than an hour."""
    _OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - OUTPUT_MAX_AGE_S
    for old in _OUTPUT_DIR.glob("*.mp4"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another worker removed it first
    handle, name = tempfile.mkstemp(prefix="overlay-", suffix=".mp4", dir=_OUTPUT_DIR)
    os.close(handle)
    return Path(name)


def build_demo() -> gr.Blocks:
    """Build the page (nothing is loaded until the first request)."""
    with gr.Blocks(title="Talking head: landmarks", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.File(label="Photo or clip", file_types=["image", "video"], type="filepath")
                backend = gr.Dropdown(
                    choices=list(BACKENDS), value="auto", label="Landmark detector",
                    info="auto: FAN (the paper's) when its weights load, else dlib",
                )
                max_seconds = gr.Slider(
                    1, MAX_CLIP_SECONDS, value=DEFAULT_CLIP_SECONDS, step=1, label="Clip seconds to process",
                )
                button = gr.Button("Find landmarks", variant="primary")
                gr.Examples(examples=EXAMPLES, inputs=[source])
            with gr.Column(scale=2):
                photo_overlay = gr.Image(label="Overlay (photo)", type="numpy", format="png", interactive=False)
                clip_overlay = gr.Video(label="Overlay (clip)", interactive=False)
                status = gr.Textbox(label="Status", interactive=False)
        button.click(
            run_landmarks,
            inputs=[source, backend, max_seconds],
            outputs=[photo_overlay, clip_overlay, status],
            api_name="landmarks",
        )
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the landmark page.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="interface to listen on (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (env GRADIO_SERVER_PORT; default 7860)")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # show_error stays off: users see gr.Error messages, never tracebacks.
    build_demo().launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False)
