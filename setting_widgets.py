"""The page's settings widgets: their values reach the handler as sent, and the handler checks them.

Gradio checks a slider's range and a radio's or dropdown's choices before the
handler runs, with a message that names no setting ("Value 500 is greater
than maximum value 100.") and a traceback in the server log. These widgets
pass an API caller's value on as sent; ``talking_head.web.inputs.check_request``
names the setting, its range and what to do, and a longer ``max_seconds`` than
the limit is trimmed to the limit instead of refused.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


class _AsSent:
    """Mixin for a Gradio widget: its value reaches the handler as sent, drawn by the widget's own front end."""

    def preprocess(self, payload: Any) -> Any:
        return payload

    def get_block_name(self) -> str:
        return type(self).__mro__[2].__name__.lower()  # the Gradio component after this mixin


class SettingSlider(_AsSent, gr.Slider):
    pass


class SettingRadio(_AsSent, gr.Radio):
    pass


class SettingDropdown(_AsSent, gr.Dropdown):
    pass
