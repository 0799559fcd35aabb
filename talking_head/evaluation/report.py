"""The evaluation report on disk: JSON, and Markdown tables of the self- and cross-reenactment means."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_SELF_COLUMNS = (
    ("SSIM ↑", "ssim", 3),
    ("PSNR ↑", "psnr", 2),
    ("L1 ↓", "l1", 4),
    ("mouth SSIM ↑", "mouth_ssim", 3),
    ("mouth L1 ↓", "mouth_l1", 4),
    ("LMK err ↓", "landmark_error", 3),
    ("CSIM ↑", "csim", 3),
    ("sharpness", "sharpness", 0),
    ("face %", "face_detected", 1),
    ("s / clip", "seconds", 1),
)
_CROSS_COLUMNS = (
    ("CSIM to A ↑", "csim", 3),
    ("LMK err ↓", "landmark_error", 3),
    ("sharpness", "sharpness", 0),
    ("face %", "face_detected", 1),
)


def _table(overall: dict[str, Any], columns: Sequence[tuple[str, str, int]]) -> list[str]:
    lines = ["| T | method | " + " | ".join(c[0] for c in columns) + " | clips |"]
    lines.append("|---|---|" + "---|" * len(columns) + "---|")
    for t_key, per_t in overall.items():
        for method, scores in per_t.items():
            cells = []
            for _, key, digits in columns:
                value = scores.get(key)
                if key == "face_detected" and value is not None:
                    value, digits = 100.0 * value, 1
                cells.append(_fmt(value, digits))
            lines.append(
                f"| {t_key.removeprefix('T=')} | {method} | "
                + " | ".join(cells)
                + f" | {scores.get('clips', '')} |"
            )
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, set-up, the self- and cross-reenactment tables."""
    cfg = report["config"]
    machine = report.get("machine", {})
    lines = [
        "# Evaluation",
        "",
        f"- weights: `{report.get('weights', '?')}`; image size {report['model_config']['image_size']}",
        (
            f"- clips: {report['clips_evaluated']} evaluated, {report['clips_skipped']} skipped; "
            f"hold-out frames per clip: {cfg['holdout']}; landmarks: {report['landmarks_backend']}"
        ),
        f"- machine: {machine.get('summary', '?')}",
        f"- wall time: {report['timings']['total_s']:.0f} s",
        "",
        "## Self-reenactment (hold-out frames rendered from their own landmarks)",
        "",
        *_table(report["overall"]["self"], _SELF_COLUMNS),
    ]
    if report["overall"]["cross"]:
        lines += ["", "## Cross-reenactment (clip i's person driven by clip i+1, relative mode)", ""]
        lines += _table(report["overall"]["cross"], _CROSS_COLUMNS)
    if "closed_to_open" in report:
        lines += ["", *_closed_open_table(report["closed_to_open"])]
    skipped = [c for c in report["clips"] if "skipped" in c]
    if skipped:
        lines += ["", "Skipped clips:", ""] + [f"- `{c['clip']}`: {c['skipped']}" for c in skipped]
    lines += [
        "",
        (
            "SSIM: Gaussian 11×11, σ 1.5, mean over RGB channels; PSNR on uint8 (capped at 100 dB); "
            "L1 in [0, 1]; LMK err: mean landmark distance / outer-eye-corner distance; "
            "CSIM: cosine of dlib 128-d face descriptors. Means over clips."
        ),
        "",
        (
            "mouth SSIM / L1: in the square around the target's lip landmarks (48–67), padded 25% "
            "on each side, resized to 64×64. sharpness: variance of the Laplacian of the gray crop; "
            "`real` is the real hold-out frames (their other metrics against themselves are trivially "
            "perfect, so not shown). SSIM rewards blur (a Gaussian blur σ = 2 of the warp raises its "
            "SSIM), so an SSIM gain means something only beside sharpness. "
            "`warp`: the shot crops warped to the target landmarks by a thin-plate spline, no network."
        ),
    ]
    return "\n".join(lines) + "\n"


def _closed_open_table(part: dict[str, Any]) -> list[str]:
    """The closed-to-open table: mouth SSIM, L1 and sharpness per method, the real frames' sharpness."""
    overall = part["overall"]
    lines = [
        "## Closed mouth to open (shot: the clip's most closed frame; targets: its most open frames)",
        "",
        f"Mean inner-lip opening (gap / inter-ocular distance): shot {_fmt(part['shot_opening'])}, "
        f"targets {_fmt(part['target_opening'])}.",
        "",
        "| method | mouth SSIM | mouth L1 | mouth sharpness | clips |",
        "|---|---|---|---|---|",
    ]
    for method, scores in overall.items():
        lines.append(
            f"| {method} | {_fmt(scores.get('mouth_ssim'))} | {_fmt(scores.get('mouth_l1'), 4)} | "
            f"{_fmt(scores.get('mouth_sharpness'), 0)} | {scores.get('clips', '')} |"
        )
    return lines


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and the Markdown table next to it (same name, ``.md``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n", encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown_report(report), encoding="utf-8")
    return out, md


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
