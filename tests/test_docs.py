"""The README says what the code does: quoted texts are the ones written."""

from __future__ import annotations

from pathlib import Path

from talking_head.animation.pipeline import SYNTHETIC_METADATA
from talking_head.web.limits import LIMIT_ENV

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_readme_quotes_the_metadata_that_is_written() -> None:
    for key, value in SYNTHETIC_METADATA.items():
        assert f'`{key}="{value}"`' in README


def test_the_readme_lists_every_app_limit() -> None:
    for variable in LIMIT_ENV.values():
        assert f"`{variable}`" in README, variable
