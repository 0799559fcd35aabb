"""The page's output choice: the whole photo at its own resolution, or the face crop (issue 23).

The page's two settings keep their names: ``paste_back`` ("The whole
photo", on by default) composites every frame into the whole photo at its
own size (:mod:`talking_head.animation.compositing`: the photo's own pixels
warped, only the head moving), with the longer side at most ``output_size``
(``0``: the app's ``max_output_size``, 1024 by default; larger photos are
downscaled first, with a notice). Off, ``output_size`` 256, 512 or 1024 gives
the face crop composited at that side; any other size resizes G's crop, as
before.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from talking_head.animation.compositing import NativeCompositor, crop_side
from talking_head.animation.person import Person
from talking_head.web.inputs import RenderRequest
from talking_head.web.limits import AppLimits

__all__ = ["page_output", "page_frames"]

CROP_SIDES = tuple(crop_side(name) for name in ("crop-256", "crop-512", "crop-1024"))


def page_output(request: RenderRequest, limits: AppLimits) -> tuple[str | None, int]:
    """The compositor's output (``None``: G's crop, resized as before) and its limit for a request."""
    if request.paste_back:
        return "photo", int(request.output_size or limits.max_output_size)
    if request.output_size in CROP_SIDES:
        return f"crop-{request.output_size}", limits.max_output_size
    return None, limits.max_output_size


def page_frames(
    frames: Iterator,
    person: Person,
    request: RenderRequest,
    notices: list[str],
    limits: AppLimits | None = None,
) -> Iterator[tuple[object, np.ndarray | None]]:
    """Each animation frame with its composited result, or ``None`` where G's crop is used as before.

    A photo downscaled to the limit adds its notice to ``notices``. ``limits``:
    the app's (``AppLimits.from_env()`` when not given).
    """
    output, limit = page_output(request, limits or AppLimits.from_env())
    if output is None:
        return ((frame, None) for frame in frames)
    compositor = NativeCompositor.for_person(person, output, limit)
    if compositor.notice:
        notices.append(compositor.notice)
    return compositor.frames(frames)
