"""Code and weights have different licences, and every place that states them says the same."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from talking_head.web.page_text import LICENCES, licence_footer

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
CARD = (REPO_ROOT / "weights" / "README.md").read_text(encoding="utf-8")
WEIGHTS_TERMS = "research and non-commercial use only"


def _front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "no front matter"
    return yaml.safe_load(match.group(1))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_model_cards_front_matter_says_what_its_text_says() -> None:
    meta = _front_matter(CARD)
    assert meta["license"] == "other"  # not apache-2.0: the weights are research-only
    assert meta["license_name"] == "research-non-commercial"
    assert (REPO_ROOT / "weights" / meta["license_link"]).is_file()
    assert WEIGHTS_TERMS in _one_line(CARD) and "Apache-2.0" in CARD  # the code's licence is named apart


def test_the_space_front_matter_covers_code_and_weights() -> None:
    meta = _front_matter(README)
    assert meta["license"] == "other"  # the Space ships the weights too
    assert "apache-2.0-code" in meta["license_name"] and "non-commercial-weights" in meta["license_name"]


def test_the_licence_files_exist() -> None:
    assert (REPO_ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    weights_licence = _one_line((REPO_ROOT / "weights" / "LICENSE").read_text(encoding="utf-8"))
    assert "non-commercial" in weights_licence and "NOT covered by the Apache-2.0" in weights_licence


def test_the_readme_table_and_the_page_footer_state_the_same_terms() -> None:
    section = README[README.index("## Licences") :]
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]  # rows after the header
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table}
    footer = licence_footer()
    for part, terms, _why in LICENCES:
        row = next(value for key, value in rows.items() if key.startswith(part))
        assert row.startswith(terms), (part, row)
        assert f"**{part}:** {terms}" in footer
    assert [terms for part, terms, _ in LICENCES if part == "Model weights"] == [WEIGHTS_TERMS]


def test_the_page_shows_the_footer(tmp_path: Path) -> None:
    import gradio as gr
    from _tiny_weights import make_tiny_weights

    import app
    from talking_head.face.landmarks import get_detector
    from talking_head.web.limits import AppLimits
    from talking_head.web.state import AppState, load_app_weights

    state = AppState(load_app_weights(str(make_tiny_weights(tmp_path / "w")), device="cpu"), AppLimits(), get_detector("dlib"))
    try:
        demo = app.build_demo(state)
    finally:
        app._STATE = None
    texts = [block.value for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    assert licence_footer() in texts
