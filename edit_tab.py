"""The page's Edit tab: one photo, a slider per named landmark edit, the edited still and its landmarks.

Widgets and wiring only, next to ``app.py`` (which builds the page and imports
this): the work is :func:`talking_head.web.editing.edit_request`. The still
re-renders when a slider moves (the latest value once the previous render is done) or the photo changes; the person is
embedded once per photo and cached, so a slider move costs one render. The
named endpoint ``/edit`` (the "Render" button) takes the photo and the nine
amounts in the order of ``EDIT_NAMES`` and the watermark flag, and returns
the edited photo, the landmark panel and a status line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from talking_head.face.edits import EDIT_NAMES, EDIT_RANGES
from talking_head.web.editing import EDIT_LABELS, edit_request


def make_edit_handler(load_state: Callable[[], Any], user_errors: Callable[[Callable], Callable]) -> Callable:
    """The ``/edit`` handler, given the page's state loader and its error wrapper."""

    @user_errors
    def edit(photo: str | None, *amounts: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """Event handler and API endpoint ``/edit``: (edited photo, landmark panel, status line)."""
        *values, watermark = amounts if len(amounts) == len(EDIT_NAMES) + 1 else (*amounts, True)
        state = load_state()
        outcome = edit_request(
            state.weights.require(),
            photo,
            dict(zip(EDIT_NAMES, values)),
            state.detector,
            state.limits,
            watermark=bool(watermark),
        )
        return outcome.image, outcome.panel, outcome.status

    return edit


def _quiet_without_photo(handler: Callable) -> Callable:
    """For a slider or a cleared photo: nothing to render (no error) until there is a photo."""

    def on_change(photo: str | None, *amounts: Any) -> Any:
        return handler(photo, *amounts) if photo else (None, None, "")

    return on_change


def _slider(name: str, slider_class: type) -> gr.Slider:
    low, high = EDIT_RANGES[name]
    step = 1.0 if name == "roll" else 0.05
    return slider_class(low, high, value=0.0, step=step, label=EDIT_LABELS[name], elem_id=f"edit-{name.replace('_', '-')}")


def edit_tab(
    load_state: Callable[[], Any],
    user_errors: Callable[[Callable], Callable],
    slider_class: type = gr.Slider,
    example_photo: str | None = None,
) -> None:
    """Build the Edit tab inside the current ``gr.Tab``; ``slider_class`` passes API values on as sent."""
    handler = make_edit_handler(load_state, user_errors)
    with gr.Row():
        with gr.Column(scale=1):
            photo = gr.Image(label="Photo of a face", type="filepath", elem_id="edit-photo")
            if example_photo:
                gr.Examples(examples=[[example_photo]], inputs=[photo], label="Example photo (public domain)")
            sliders = [_slider(name, slider_class) for name in EDIT_NAMES]
            watermark = gr.Checkbox(value=True, label='Visible "SYNTHETIC" mark', elem_id="edit-watermark")
            button = gr.Button("Render", variant="primary", elem_id="edit-render")
        with gr.Column(scale=1):
            result = gr.Image(label="Edited photo (download: ⤓ above the picture)", type="numpy", format="png",
                              interactive=False, elem_id="edit-result")
            panel = gr.Image(label="Edited landmarks on the rendered face", type="numpy", format="png",
                             interactive=False, elem_id="edit-landmarks")
            status = gr.Textbox(label="Status", interactive=False, elem_id="edit-status")
    inputs, outputs = [photo, *sliders, watermark], [result, panel, status]
    button.click(handler, inputs=inputs, outputs=outputs, api_name="edit", concurrency_id="render")
    quiet = _quiet_without_photo(handler)
    photo.change(quiet, inputs=inputs, outputs=outputs, api_visibility="private", concurrency_id="render")
    for slider in sliders:
        slider.change(
            quiet, inputs=inputs, outputs=outputs, api_visibility="private", concurrency_id="render",
            trigger_mode="always_last",  # while a slider moves, only its latest value waits for a render
        )
