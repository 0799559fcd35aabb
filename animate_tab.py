"""The page's Animate tab: photos, a driving motion, fine-tuning steps, motion controls, settings, the result.

Widgets and wiring only, next to ``app.py`` (which builds the page, defines the
handlers and imports this). The named endpoint ``/animate`` (the "Animate"
button) takes, in this order: photos, driving clip, driving motion, steps,
mode, smoothing, max seconds, paste back, output size, watermark, then the
motion controls (multiplier, region, closed lips, blinks). The controls came
last, with defaults that change nothing, so that a client written for the
first ten inputs keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from setting_widgets import SettingDropdown, SettingRadio, SettingSlider
from talking_head.animation.pipeline import DEFAULT_SMOOTHING
from talking_head.face.motion_controls import MAX_MULTIPLIER
from talking_head.web.inputs import BLINK_LABELS, MAX_SMOOTHING, MODES, OUTPUT_SIZES, REGION_LABELS
from talking_head.web.limits import AppLimits
from talking_head.web.page_text import STEPS_INFO
from talking_head.web.previews import example_motions
from talking_head.web.state import AppState

# 0 = the model's own size: the default, because upscaling adds no detail and
# encoding a 512 px result took ~4x longer than 256 px on the 2-core CPU.
DEFAULT_OUTPUT_SIZE = 0
DEFAULT_SECONDS = 5.0  # the max-seconds slider's start value


@dataclass(frozen=True)
class AnimateHandlers:
    """The handlers the tab wires; ``app.py`` defines them (they use its state and its error wrapper)."""

    animate: Callable[..., Any]  # the ``/animate`` endpoint: (result MP4, overlay MP4, status line)
    preview_photos: Callable[..., Any]  # photos -> gallery of detected faces
    preview_motion: Callable[..., Any]  # motion .npz -> landmark-sketch video
    fix_recording: Callable[..., Any]  # a webcam recording -> an MP4 whose length the player knows


def _clear_if(value: Any) -> Any:
    """Clear the other driving input once this one is set (one driving source at a time)."""
    return None if value else gr.skip()


def _motion_examples(folder: Path) -> tuple[list[list[str]], list[str]]:
    motions = example_motions(folder)
    return [[str(track)] for track, _ in motions], [track.stem.replace("-", " ") for track, _ in motions]


def _photo_inputs(limits: AppLimits, example_photo: Path) -> tuple[gr.File, gr.Gallery]:
    """The photos upload with its example, and the gallery of detected faces."""
    photos = gr.File(
        label=f"Photos of one person (1 to {limits.max_photos}; JPEG, PNG, WebP, ...)",
        file_count="multiple",
        type="filepath",
        elem_id="photos",
    )
    gr.Examples(examples=[[[str(example_photo)]]], inputs=[photos], label="Example photo (public domain)")
    faces = gr.Gallery(
        label="Detected faces",
        columns=4,
        height=240,
        object_fit="contain",
        interactive=False,
        elem_id="faces",
    )
    return photos, faces


def _driving_inputs(limits: AppLimits, motions_folder: Path) -> tuple[gr.File, gr.Video, gr.Video]:
    """Two tabs: a motion file (with the examples and a sketch preview) or a clip/webcam recording."""
    with gr.Tab("Example or motion file"):
        driving_motion = gr.File(
            label="Driving motion (.npz landmark track)", type="filepath", elem_id="driving-motion"
        )
        motion_examples, motion_labels = _motion_examples(motions_folder)
        gr.Examples(
            examples=motion_examples,
            inputs=[driving_motion],
            label="Example motions (5 s, 25 fps)",
            example_labels=motion_labels,
            elem_id="motion-examples",
        )
        motion_sketch = gr.Video(label="Motion preview (landmarks)", interactive=False, height=200)
    with gr.Tab("Your clip or webcam"):
        driving_clip = gr.Video(
            label=f"Driving clip (upload or record; the first {limits.max_driving_seconds:g} s at most)",
            sources=["upload", "webcam"],
            include_audio=True,
            elem_id="driving-clip",
        )
    return driving_motion, motion_sketch, driving_clip


def motion_controls(prefix: str = "") -> list[gr.components.Component]:
    """Multiplier, region, closed lips, blinks (in this order; ``talking_head.face.motion_controls``).

    ``prefix`` starts every ``elem_id`` (the Live tab has a set of its own: ``live-``)."""
    with gr.Accordion("Motion controls", open=False, elem_id=f"{prefix}motion-controls"):
        multiplier = SettingSlider(
            0,
            MAX_MULTIPLIER,
            value=1.0,
            step=0.05,
            label="Motion multiplier",
            info="how strongly the driver's expression moves the face: 0 the photo's own expression "
            "(the head still moves), 1 the driver's, 2 exaggerated",
            elem_id=f"{prefix}multiplier",
        )
        region = SettingRadio(
            [(label, value) for value, label in REGION_LABELS.items()],
            value="all",
            label="What the driver moves",
            info="lips only: mouth and jaw; eyes only: eyes and brows; head pose only: no expression",
            elem_id=f"{prefix}region",
        )
        closed_lips = gr.Checkbox(
            value=False,
            label="Start from closed lips (an open-mouth photo does not keep its mouth open)",
            elem_id=f"{prefix}closed-lips",
        )
        blinks = SettingRadio(
            [(label, value) for value, label in BLINK_LABELS.items()],
            value="driver",
            label="Blinks",
            info="none: the eyes never close beyond the photo's",
            elem_id=f"{prefix}blinks",
        )
    return [multiplier, region, closed_lips, blinks]


def _advanced_settings(limits: AppLimits) -> list[gr.components.Component]:
    """Motion mode, smoothing, seconds, paste-back, output size, watermark (in this order)."""
    with gr.Accordion("Advanced", open=False):
        mode = SettingRadio(
            list(MODES),
            value="relative",
            label="Motion",
            info="relative: keep the person's face shape and add the driver's motion; absolute: the driver's landmarks (the paper's)",
        )
        smoothing = SettingSlider(
            0,
            MAX_SMOOTHING,
            value=DEFAULT_SMOOTHING,
            step=0.5,
            label="Smoothing of the driving landmarks (frames)",
        )
        max_seconds = SettingSlider(
            min(0.5, limits.max_driving_seconds / 2),  # below the maximum even for tiny limits
            limits.max_driving_seconds,
            value=min(DEFAULT_SECONDS, limits.max_driving_seconds),
            step=0.5,
            label="Seconds of the driving motion to use",
        )
        paste_back = gr.Checkbox(value=True, label="The whole photo, only the head moving (off: the face crop)")
        output_size = SettingDropdown(
            [("the model's size", 0)] + [(f"{s} px", s) for s in OUTPUT_SIZES if s <= limits.max_output_size],
            value=DEFAULT_OUTPUT_SIZE,
            label="Output size (pixels, longer side)",
        )
        watermark = gr.Checkbox(value=True, label='Visible "SYNTHETIC" mark')
    return [mode, smoothing, max_seconds, paste_back, output_size, watermark]


def _result_outputs() -> list[gr.components.Component]:
    """The result and overlay videos and the status line."""
    result = gr.Video(label="Result", interactive=False, elem_id="result")
    overlay = gr.Video(label="Landmark overlay", interactive=False, elem_id="overlay")
    gr.Markdown("<small>Overlay: driving frame | landmark image given to the generator | result</small>")
    status = gr.Textbox(label="Status", interactive=False, lines=3, elem_id="status")
    return [result, overlay, status]


def _wire_previews(
    handlers: AnimateHandlers, photos, faces, driving_motion, motion_sketch, driving_clip  # the tab's widgets
) -> None:
    """Face and motion previews, one driving source at a time, the webcam fix: all private, none an endpoint."""
    photos.change(
        handlers.preview_photos, inputs=photos, outputs=faces, api_visibility="private", concurrency_id="preview"
    )
    driving_motion.change(
        _clear_if, inputs=driving_motion, outputs=driving_clip, api_visibility="private", queue=False
    )
    driving_motion.change(
        handlers.preview_motion,
        inputs=driving_motion,
        outputs=motion_sketch,
        api_visibility="private",
        concurrency_id="preview",
    )
    driving_clip.change(
        _clear_if, inputs=driving_clip, outputs=driving_motion, api_visibility="private", queue=False
    )
    driving_clip.change(  # fires again with the rewritten file, which needs nothing more
        handlers.fix_recording,
        inputs=driving_clip,
        outputs=driving_clip,
        api_visibility="private",
        concurrency_id="preview",
    )


def animate_tab(state: AppState, handlers: AnimateHandlers, example_photo: Path, motions_folder: Path) -> None:
    """Build the Animate tab inside the current ``gr.Tab`` and wire ``/animate``."""
    limits = state.limits
    with gr.Row():
        with gr.Column(scale=1):
            photos, faces = _photo_inputs(limits, example_photo)
            driving_motion, motion_sketch, driving_clip = _driving_inputs(limits, motions_folder)
            steps = SettingSlider(
                0,
                limits.max_steps,
                value=state.initial_steps(),
                step=1,
                label="Fine-tuning steps",
                info=STEPS_INFO,
            )
            controls = motion_controls()
            settings = _advanced_settings(limits)
            button = gr.Button("Animate", variant="primary", elem_id="animate")
        with gr.Column(scale=1):
            outputs = _result_outputs()
    _wire_previews(handlers, photos, faces, driving_motion, motion_sketch, driving_clip)
    button.click(
        handlers.animate,
        inputs=[photos, driving_clip, driving_motion, steps, *settings, *controls],
        outputs=outputs,
        api_name="animate",
        concurrency_id="render",
    )
