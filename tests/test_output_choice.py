"""web/output_choice.py: the page's whole-photo default and its face-crop sides."""

from __future__ import annotations

import pytest

from talking_head.web.inputs import RenderRequest
from talking_head.web.limits import AppLimits
from talking_head.web.output_choice import page_output

LIMITS = AppLimits()


@pytest.mark.parametrize(
    "paste_back, size, expected",
    [
        (True, None, ("photo", LIMITS.max_output_size)),  # the whole photo up to the app's limit
        (True, 512, ("photo", 512)),
        (False, 512, ("crop-512", LIMITS.max_output_size)),
        (False, 1024, ("crop-1024", LIMITS.max_output_size)),
        (False, 384, (None, LIMITS.max_output_size)),  # other sides: G's crop resized, as before
        (False, None, (None, LIMITS.max_output_size)),
    ],
)
def test_page_output(paste_back: bool, size: int | None, expected: tuple) -> None:
    request = RenderRequest(photos=("a.png",), driving="b.npz", paste_back=paste_back, output_size=size)
    assert page_output(request, LIMITS) == expected


def test_the_page_and_its_api_default_to_the_whole_photo() -> None:
    import inspect

    import app

    assert inspect.signature(app.animate).parameters["paste_back"].default is True
