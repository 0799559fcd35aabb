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


# ----- issue 27: what the README says is true, and comes from the repository -------------------

import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

from talking_head.web.limits import CPU_DEFAULT_STEPS, GPU_DEFAULT_STEPS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
MADE_WITH = DOCS / "media" / "made_with.json"
PICTURES = re.findall(r"!\[[^\]]*\]\((docs/[^)]+)\)", README)
# Speed figures: per-frame or per-step costs, rates, and click-to-video times.
TIMING = re.compile(r"ms/frame|s/step|ms/step|frames/s|episodes/s|\bclick\w*\b[^.]*?\b\d+(?:\.\d+)? s\b", re.I)
CPU_NAME = re.compile(r"Zen \d|Xeon|EPYC|H200|\bGPU\b|CUDA")
PRECISION = re.compile(r"\b(fp32|bf16)\b")


def _paragraphs(text: str) -> list[str]:
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _made_with() -> dict:
    return json.loads(MADE_WITH.read_text(encoding="utf-8"))


def test_the_configuration_table_states_the_codes_default_steps() -> None:
    row = next(line for line in README.splitlines() if line.startswith("| `TALKING_HEAD_DEFAULT_STEPS`"))
    default = row.split("|")[2]
    assert set(map(int, re.findall(r"\d+", default))) == {CPU_DEFAULT_STEPS, GPU_DEFAULT_STEPS}, row


def test_every_picture_is_made_by_a_script_of_the_repository_from_the_shipped_weights() -> None:
    record = _made_with()
    assert PICTURES, "the README shows no picture"
    for picture in PICTURES:
        entry = record[Path(picture).name]
        script = entry["made_by"].split()[1]
        assert (REPO_ROOT / script).is_file(), entry["made_by"]
        assert entry["weights"] == "weights", picture  # the shipped weights, not test ones
    gif = record["astronaut.gif"]
    assert "--weights weights" in gif["command"] and gif["command"] in README.replace("\n", " ")
    assert "125 frames rendered" in record["screenshot.png"]["status"]  # a real click with the page's defaults


def test_the_media_note_states_the_steps_the_pictures_were_made_with() -> None:
    # The pictures show fine-tuning at the GPU default (on a CPU the slider starts at 0, the FF panel).
    record = _made_with()
    for name in ("astronaut.gif", "astronaut_strip.png", "hard_case.png"):
        assert record[name]["steps"] == GPU_DEFAULT_STEPS, name
    note = README[README.index("docs/media/astronaut.gif") : README.index("### Where it fails")]
    assert f"--steps {GPU_DEFAULT_STEPS}" in note and f"FT ({GPU_DEFAULT_STEPS} steps)" in note
    assert not re.search(r"--steps (?!%d\b)\d+" % GPU_DEFAULT_STEPS, note), "another step count in the media note"


@pytest.mark.parametrize("picture", PICTURES)
def test_each_picture_names_the_machine_and_precision_it_was_made_on(picture: str) -> None:
    entry = _made_with()[Path(picture).name]
    after = " ".join(README[README.index(picture) :].split())[:1600]
    assert entry["machine"]["cpu"] in after and entry["machine"]["cpu_family_model"] in after, picture
    assert entry["precision"] in after, picture


def test_the_readme_shows_a_hard_case_honestly() -> None:
    section = README[README.index("### Where it fails") : README.index("## Set-up")]
    assert "docs/media/hard_case.png" in section and "does not paint" in section


def test_every_speed_figure_names_its_cpu_and_precision() -> None:
    unnamed = [
        paragraph[:160]
        for paragraph in _paragraphs(README)
        if TIMING.search(paragraph) and not (CPU_NAME.search(paragraph) and PRECISION.search(paragraph))
    ]
    assert not unnamed, "speed figures without their CPU and precision:\n" + "\n".join(unnamed)


# ----- the repository is self-contained -------------------------------------------------------

# The research notes and data that a clone does not have (spelled in two parts, or this file would match).
OUTSIDE = re.compile(r"\.\./sha" r"red|sha" r"red/(?:data|docs)")
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".cfg", ".json", ".yml", ".yaml", ""}
# Files owned elsewhere that still cite the old notes; each must be fixed (then this list emptied).
NOT_YET: set[str] = set()


def _tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if Path(name).suffix in TEXT_SUFFIXES and (REPO_ROOT / name).is_file()]


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="owned elsewhere: still cites the notes outside the repository")) if n in NOT_YET else n for n in _tracked_text_files()],
)
def test_no_file_points_outside_the_repository(name: str) -> None:
    text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
    found = sorted({match.group(0) for match in OUTSIDE.finditer(text)})
    assert not found, f"{name} cites {found}"


def _all_text() -> dict[str, str]:
    return {name: (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace") for name in _tracked_text_files()}


def test_the_design_sections_that_are_cited_exist() -> None:
    design = (DOCS / "DESIGN.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", design, re.MULTILINE)}
    cited = {
        (name, int(number))
        for name, text in _all_text().items()
        for number in re.findall(r"DESIGN(?:\.md`?)? §(\d+)", text)
    }
    missing = sorted((name, number) for name, number in cited if number not in sections)
    assert cited and not missing, missing


def test_the_style_rules_that_are_cited_exist() -> None:
    style = (DOCS / "STYLE.md").read_text(encoding="utf-8")
    rules = {int(n) for n in re.findall(r"^(\d+)\. \*\*", style, re.MULTILINE)}
    cited = {int(n) for text in _all_text().values() for n in re.findall(r"STYLE\.md`? rule (\d+)", text)}
    assert cited and cited <= rules, cited - rules


def test_the_docs_a_contributor_needs_are_in_the_repository() -> None:
    for name in ("DESIGN.md", "STYLE.md", "DATA.md", "ARCHITECTURE.md", "WARP.md"):
        assert (DOCS / name).is_file(), name
    texts = [README] + [(DOCS / n).read_text(encoding="utf-8") for n in ("DESIGN.md", "STYLE.md", "DATA.md", "ARCHITECTURE.md", "WARP.md")]
    for text in texts:
        for path in re.findall(r"`((?:docs|examples|scripts|weights|tests)/[\w./-]+)`", text):
            assert (REPO_ROOT / path).exists(), path
    data = (DOCS / "DATA.md").read_text(encoding="utf-8")
    assert "python -m talking_head prepare" in data and "research" in data
