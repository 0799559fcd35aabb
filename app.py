"""Gradio page: animate one or more photos of a person with a driving clip or motion.

A thin shell: widgets and wiring only; the work is done by ``talking_head.web``
(limits, state, input checks, the render job, previews) on top of
``talking_head.animation``. The model loads once, when the page is built, from
``$TALKING_HEAD_WEIGHTS`` (a weights folder or a Hub repo id; default
``weights/``); without weights the page says what is missing and how to fix it.

Run ``python app.py`` (http://127.0.0.1:7860); ``--host``, ``--port`` and
``--share`` override the defaults, which come from ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` when set. The named endpoint ``/animate`` is usable from
``gradio_client``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # ZeroGPU: spaces.GPU reserves a GPU per call there and is a no-op elsewhere.
    import spaces

    gpu = spaces.GPU
except ImportError:  # the app also runs without the `spaces` package

    def gpu(task: Callable | None = None, **_: Any) -> Callable:
        return task if task is not None else (lambda fn: fn)


import gradio as gr
import numpy as np
from starlette.middleware import Middleware

from talking_head.animation.pipeline import DEFAULT_SMOOTHING
from talking_head.errors import TalkingHeadError
from talking_head.face.landmarks import BACKENDS
from talking_head.web import previews
from talking_head.web.inputs import check_backend, check_clip_seconds, render_request, upload_paths
from talking_head.web.job import PreparedJob, RenderOutcome, prepare_job, run_job
from talking_head.web.limits import gpu_duration
from talking_head.web.page_text import DESCRIPTION, licence_footer
from talking_head.web.previews import landmark_preview, motion_preview
from talking_head.web.queue_time import ArrivalTimes, queue_seconds, with_queue_time
from talking_head.web.recording import fixed_recording
from talking_head.web.state import AppState, load_app_state
from animate_tab import DEFAULT_OUTPUT_SIZE, DEFAULT_SECONDS, AnimateHandlers, animate_tab
from edit_tab import edit_tab
from live_tab import live_tab
from setting_widgets import SettingDropdown, SettingSlider

logger = logging.getLogger("talking_head.app")

REPO_ROOT = Path(__file__).resolve().parent
EXAMPLES = REPO_ROOT / "examples"
EXAMPLE_PHOTO = EXAMPLES / "astronaut.png"
EXAMPLE_MOTIONS = EXAMPLES / "motions"
# One render at a time per process: a job holds the model's activations and two
# video encoders; simultaneous users wait in the queue instead of exhausting memory.
CONCURRENCY_LIMIT = 1
# Landmark tab (kept from the interim page): longest part of a clip processed.
MAX_CLIP_SECONDS = 60.0
DEFAULT_CLIP_SECONDS = 10.0

_STATE: AppState | None = None


def load_state() -> AppState:
    """Load the weights, limits and landmark detector once (later calls reuse them)."""
    global _STATE
    if _STATE is None:
        _STATE = load_app_state()
        logger.info("serving model %s; landmarks: %s", _STATE.weights.describe(), _STATE.detector.name)
    return _STATE


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def user_errors(handler: Callable) -> Callable:
    """Turn library errors into ``gr.Error`` with their message; never show a traceback.

    ``TalkingHeadError`` messages are written for users. Anything else is a
    bug: it is logged with its traceback on the server and the user gets a
    short message; the server keeps serving.
    """

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except TalkingHeadError as error:
            raise gr.Error(_sentence(str(error)), print_exception=False) from error
        except Exception as error:
            logger.exception("request failed in %s", handler.__name__)
            raise gr.Error(
                f"Something went wrong on the server ({type(error).__name__}). Try again; if it keeps failing, "
                "try other inputs or report the problem.",
                print_exception=False,
            ) from error

    return wrapped


# ----- the animate tab ------------------------------------------------------------------


def _gpu_seconds(job: PreparedJob, progress: gr.Progress | None = None) -> int:
    """ZeroGPU reservation for a prepared job (steps and frame count known)."""
    return gpu_duration(job.request.steps, job.num_frames)


@gpu(duration=_gpu_seconds)
def render_on_gpu(job: PreparedJob, progress: gr.Progress | None = None) -> RenderOutcome:
    """Embedding, fine-tuning and rendering: the only part that needs the GPU.

    On ZeroGPU this runs in a worker process that passes only ``gr.Error``
    messages back, so library errors are converted here.
    """
    state = load_state()
    report = (lambda fraction, desc: progress(fraction, desc=desc)) if progress is not None else None
    try:
        return run_job(state.weights.require(), job, state.detector, progress=report)
    except TalkingHeadError as error:
        raise gr.Error(_sentence(str(error)), print_exception=False) from error


@user_errors
def animate(
    photos: list[str] | None,
    driving_clip: str | None,
    driving_motion: str | None,
    steps: float = 0,
    mode: str = "relative",
    smoothing: float = DEFAULT_SMOOTHING,
    max_seconds: float = DEFAULT_SECONDS,
    paste_back: bool = True,
    output_size: float = DEFAULT_OUTPUT_SIZE,
    watermark: bool = True,
    multiplier: float = 1.0,
    region: str = "all",
    closed_lips: bool = False,
    blinks: str = "driver",
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects the tracker through this default
    request: gr.Request | None = None,
) -> tuple[str, str | None, str]:
    """Event handler and API endpoint ``/animate``: (result MP4, overlay MP4, status line).

    The motion controls (multiplier, region, closed lips, blinks) come last,
    with defaults that change nothing: a client of the first ten inputs still
    works. The status line includes the time the request waited in the queue
    (Gradio passes ``request``).
    """
    waited = queue_seconds(request.request if request is not None else None)
    state = load_state()
    model = state.weights.require()
    settings = (steps, mode, smoothing, max_seconds, paste_back, output_size, watermark)
    controls = (multiplier, region, closed_lips, blinks)
    wanted = render_request(photos, driving_clip, driving_motion, *settings, *controls)
    progress(0.0, desc="Checking the inputs")
    job = prepare_job(
        wanted,
        state.limits,
        state.detector,
        model.config.image_size,
        progress=lambda fraction, desc: progress(fraction, desc=desc),
    )
    job = dataclasses.replace(job, timings=with_queue_time(job.timings, waited))
    for notice in job.notices:
        gr.Info(_sentence(notice))
    outcome = render_on_gpu(job, progress)
    return str(outcome.video), str(outcome.overlay) if outcome.overlay else None, outcome.status


@user_errors
def preview_photos(photos: list[str] | None) -> list[tuple[np.ndarray, str]]:
    """Each uploaded photo with its face box and landmarks; a warning toast per unusable photo."""
    paths = upload_paths(photos)
    if not paths:
        return []
    state = load_state()
    size = state.weights.model.config.image_size if state.weights.ok else 256
    items, warnings = previews.preview_photos(paths, state.detector, state.limits, size)
    for warning in warnings:
        gr.Warning(_sentence(warning))
    return items


@user_errors
def preview_motion(motion: str | None) -> str | None:
    """The landmark-sketch preview of an uploaded motion (.npz)."""
    if not motion:
        return None
    return str(motion_preview(motion, load_state().limits))


@user_errors
def fix_recording(clip: str | None) -> Any:
    """A webcam recording rewritten so that the player shows its length (other clips stay as they are)."""
    fixed = fixed_recording(clip, load_state().limits)
    return str(fixed) if fixed is not None else gr.skip()


# ----- the landmarks tab (the interim page, kept: it costs one handler) ---------------------


@user_errors
def run_landmarks(
    file_path: str | None,
    backend: str = "auto",
    max_seconds: float = DEFAULT_CLIP_SECONDS,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects the tracker through this default
) -> tuple[np.ndarray | None, str | None, str]:
    """Event handler: (photo overlay or None, clip overlay path or None, status line).

    User errors (``TalkingHeadError``) become ``gr.Error`` with their message.
    """
    if not file_path:
        raise gr.Error("Upload a photo or a clip first.", print_exception=False)
    stages = {"landmarks": "Finding landmarks", "overlay": "Drawing the overlay"}
    image, clip, status = landmark_preview(
        file_path,
        check_backend(backend),
        check_clip_seconds(max_seconds, MAX_CLIP_SECONDS),
        progress=lambda stage, done, total: progress((done, total), desc=stages.get(stage, stage), unit="frames"),
    )
    return image, str(clip) if clip is not None else None, status


def _landmarks_tab() -> None:
    with gr.Row():
        with gr.Column(scale=1):
            source = gr.File(label="Photo or clip", type="filepath")
            backend = SettingDropdown(
                choices=list(BACKENDS),
                value="auto",
                label="Landmark detector",
                info="auto: FAN (the paper's) when its weights load, else dlib",
            )
            max_seconds = SettingSlider(
                1, MAX_CLIP_SECONDS, value=DEFAULT_CLIP_SECONDS, step=1, label="Clip seconds to process"
            )
            button = gr.Button("Find landmarks")
            gr.Examples(examples=[str(EXAMPLE_PHOTO)], inputs=[source])
        with gr.Column(scale=2):
            photo_overlay = gr.Image(label="Overlay (photo)", type="numpy", format="png", interactive=False)
            clip_overlay = gr.Video(label="Overlay (clip)", interactive=False)
            status = gr.Textbox(label="Status", interactive=False)
    button.click(
        run_landmarks,
        inputs=[source, backend, max_seconds],
        outputs=[photo_overlay, clip_overlay, status],
        api_name="landmarks",
        concurrency_id="landmarks",
    )


# ----- the page ------------------------------------------------------------------------------


def _weights_banner(state: AppState) -> str:
    if state.weights.ok:
        return f"<small>Model: {state.weights.describe()} · landmarks: {state.detector.name}</small>"
    return f"### ⚠️ The model is not loaded\n{state.weights.error}"


def build_demo(state: AppState | None = None) -> gr.Blocks:
    """Build the page; loads the weights and the landmark detector once (see :func:`load_state`)."""
    global _STATE
    if state is not None:
        _STATE = state
    state = load_state()
    with gr.Blocks(title="Talking head", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        gr.Markdown(_weights_banner(state), elem_id="weights-status")
        with gr.Tab("Animate"):
            handlers = AnimateHandlers(animate, preview_photos, preview_motion, fix_recording)
            animate_tab(state, handlers, EXAMPLE_PHOTO, EXAMPLE_MOTIONS)
        with gr.Tab("Edit"):
            edit_tab(load_state, user_errors, SettingSlider, str(EXAMPLE_PHOTO))
        with gr.Tab("Live"):
            live_tab(load_state, user_errors, SettingSlider)
        with gr.Tab("Landmarks"):
            _landmarks_tab()
        gr.Markdown(licence_footer(), elem_id="licences")
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=state.limits.queue_size)
    return demo


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the talking-head page.")
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="interface to listen on (env GRADIO_SERVER_NAME; default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (env GRADIO_SERVER_PORT; default 7860)",
    )
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo = build_demo()
    # show_error stays off: users see gr.Error messages, never tracebacks.
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        show_error=False,
        max_file_size=load_state().limits.max_upload_bytes,
        app_kwargs={"middleware": [Middleware(ArrivalTimes)]},  # the status line's time in the queue
    )
