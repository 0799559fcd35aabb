"""The page's Live tab: the photo follows the visitor's webcam, frame by frame.

Widgets and wiring only, next to ``app.py`` (which builds the page and imports
this): the work is :mod:`talking_head.web.live`. "Prepare" embeds the photos
(and fine-tunes when asked) once; the webcam then streams frames to
:func:`~talking_head.web.live.live_frame`, which renders each one and says
the frame rate, the server's latency and the seconds left. One live session
runs at a time (its own queue, ``concurrency_id="live"``), and each lasts at
most ``TALKING_HEAD_LIVE_SECONDS`` (default 60): the next visitor waits in
that queue while everyone else's Animate and Edit requests go on. On ZeroGPU
the tab only says why live mode is not offered there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from animate_tab import motion_controls
from talking_head.web.live import (
    LIVE_PHOTO_LIMIT,
    live_controls,
    live_frame,
    live_unavailable,
    prepare_live,
    set_live_controls,
)

STREAM_EVERY_S = 0.04  # the webcam's frame interval: 25 frames a second at most
LIVE_INTRO = (
    "Upload one or more photos of a face and press **Prepare**, then start the camera: the photo follows "
    "your face. Your first frame is the neutral pose (look straight at the camera, mouth closed); "
    "**Reset neutral pose** takes the next one. G renders the face at 256×256; the whole photo keeps its "
    "own pixels around it, with only the head moving. Camera frames are not kept."
)


def _reset_neutral(session: Any) -> str:
    if session is None:
        return "Prepare a photo first."
    session.reset_neutral()
    return "The next camera frame is the new neutral pose."


def _camera() -> gr.Image:
    """The streaming webcam, asked for 640×480 (the server decodes every frame it sends)."""
    size = {"width": {"ideal": 640}, "height": {"ideal": 480}}
    return gr.Image(
        label="Your camera",
        sources=["webcam"],
        streaming=True,
        type="numpy",
        webcam_options=gr.WebcamOptions(mirror=True, constraints={"video": size}),
        height=360,
        elem_id="live-camera",
    )


def _inputs(
    max_steps: int, slider_class: type
) -> tuple[gr.File, Any, gr.Checkbox, gr.Radio, gr.Button, gr.Image]:
    """The left column: photos, steps, the mark, the output, Prepare, the camera."""
    photos = gr.File(
        label="Photos of one person", file_count="multiple", file_types=["image"], elem_id="live-photos"
    )
    steps = slider_class(
        0,
        max_steps,
        value=0,
        step=1,
        label="Fine-tuning steps",
        info="0: ready in a second or two; steps add about 0.3–0.5 s each on a CPU",
    )
    watermark = gr.Checkbox(value=True, label='Visible "SYNTHETIC" mark', elem_id="live-watermark")
    output = gr.Radio(
        [
            (f"The whole photo (up to {LIVE_PHOTO_LIMIT} px)", "photo"),
            ("The face, 256×256 (fastest)", "crop"),
        ],
        value="photo",
        label="What is shown",
        info="the whole photo moves only the head; it costs more per frame (Prepare again to change)",
        elem_id="live-output",
    )
    button = gr.Button("Prepare", variant="primary", elem_id="live-prepare")
    return photos, steps, watermark, output, button, _camera()


def live_tab(
    load_state: Callable[[], Any],
    user_errors: Callable[[Callable], Callable],
    slider_class: type = gr.Slider,
) -> None:
    """Build the Live tab inside the current ``gr.Tab``."""
    reason = live_unavailable()
    if reason:
        gr.Markdown(reason, elem_id="live-unavailable")
        return
    state = load_state()
    limits = state.limits

    @user_errors
    def prepare(photos: Any, steps: float, watermark: bool, output: str, *controls: Any) -> tuple[Any, str]:
        model, chosen = state.weights.require(), live_controls(*controls)
        return prepare_live(model, photos, steps, state.detector, limits, bool(watermark), chosen, output)

    @user_errors
    def change_controls(session: Any, *controls: Any) -> str:
        return set_live_controls(session, live_controls(*controls))

    def stream(frame: Any, session: Any) -> tuple[Any, str]:
        return live_frame(session, frame)

    gr.Markdown(LIVE_INTRO)
    with gr.Row():
        with gr.Column(scale=1):
            photos, steps, watermark, output, button, camera = _inputs(limits.max_steps, slider_class)
            controls = motion_controls(prefix="live-")
        with gr.Column(scale=1):
            result = gr.Image(
                label="Live result",
                type="numpy",
                format="jpeg",
                interactive=False,
                height=360,
                elem_id="live-result",
            )
            status = gr.Textbox(label="Live status", interactive=False, lines=2, elem_id="live-status")
            neutral = gr.Button("Reset neutral pose", elem_id="live-neutral")
    session = gr.State(None)
    button.click(
        prepare,
        inputs=[photos, steps, watermark, output, *controls],
        outputs=[session, status],
        api_visibility="private",
        concurrency_id="render",
    )
    camera.stream(
        stream,
        inputs=[camera, session],
        outputs=[result, status],
        api_visibility="private",
        stream_every=STREAM_EVERY_S,
        time_limit=limits.live_seconds + 1,
        concurrency_limit=1,
        concurrency_id="live",
        show_progress="hidden",
    )
    for control in controls:  # a running session takes new controls from its next frame
        control.change(
            change_controls,
            inputs=[session, *controls],
            outputs=status,
            api_visibility="private",
            queue=False,
        )
    neutral.click(_reset_neutral, inputs=session, outputs=status, api_visibility="private", queue=False)
