"""Loss curves of a training run as a PNG: ``stats.jsonl`` of one or more run folders, in order.

Runs continued from one another (``--init-from``) are drawn one after the
other on a shared step axis; ``RUN:STEP`` keeps a run's lines up to STEP (the
checkpoint that was exported and continued from). Each panel is one family of losses, smoothed
with a running mean over ``--window`` stats lines (the raw lines faintly
behind); panels whose losses are all zero or absent in these runs are left
out. ``--first-step`` shifts the axis to where these runs continue an earlier
lineage. Needs matplotlib (``pip install matplotlib``; not a dependency of
the package).

    python scripts/plot_training.py runs/cpu-warp:450 runs/crop --out weights/loss_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PANELS = (
    ("content (L1 of the whole crop or frame)", ("loss_cnt_pixel",)),
    ("content inside the lip square (× mouth weight)", ("loss_cnt_mouth",)),
    ("1 − SSIM (× weight): whole crop, lip square at 64²", ("loss_cnt_ssim", "loss_cnt_mouth_ssim")),
    ("detail: 8×8-tile Laplacian energy match (× detail weight)", ("loss_cnt_detail",)),
    ("adversarial and feature matching", ("loss_adv", "loss_fm")),
    ("D: hinge loss, scores", ("loss_d_hinge", "d_real", "d_fake")),
    ("lip square: G's −D_lip(x̂) and feature matching (× weights)", ("loss_lip_adv", "loss_lip_fm")),
    ("D_lip: hinge loss, scores; before its update: balanced accuracy, share real > own x̂ (0.5 = chance)",
     ("lip_d_loss", "lip_d_real", "lip_d_fake", "lip_d_acc", "lip_d_rank")),
    ("embedding match L_MCH", ("loss_mch",)),
)


def read_runs(runs: list[str]) -> tuple[list[dict], list[int]]:
    """Stats lines of the runs (``RUN`` or ``RUN:STEP``) on one step axis, and where each later run starts."""
    rows, starts, offset = [], [], 0
    for spec in runs:
        folder, _, last = spec.partition(":")
        run, last_step = Path(folder), int(last) if last else None
        lines: list[dict] = []
        for text in (run / "stats.jsonl").read_text().splitlines():
            if text.strip():
                line = json.loads(text)
                # A resumed run repeats the steps after its last checkpoint: the later lines count.
                while lines and lines[-1]["step"] >= line["step"]:
                    lines.pop()
                lines.append(line)
        lines = [line for line in lines if last_step is None or line["step"] <= last_step]
        if rows:
            starts.append(offset)
        for line in lines:
            rows.append({**line, "step": line["step"] + offset})
        offset = rows[-1]["step"] if rows else offset
    return rows, starts


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over ``window`` points (shorter at the start)."""
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(len(values)) + 1 - counts]) / counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders in training order, each RUN or RUN:LAST_STEP")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--window", type=int, default=20, help="stats lines in the running mean")
    parser.add_argument(
        "--mark",
        type=int,
        nargs="*",
        default=[],
        help="steps to mark with a dashed line (loss weights changed)",
    )
    parser.add_argument(
        "--first-step", type=int, default=0, help="E/G steps trained before the first run (axis offset)"
    )
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, starts = read_runs(args.runs)
    steps = np.array([r["step"] for r in rows]) + args.first_step
    starts = [start + args.first_step for start in starts]
    panels = [(title, [key for key in keys if any(r.get(key, 0.0) for r in rows)]) for title, keys in PANELS]
    panels = [(title, keys) for title, keys in panels if keys]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, keys) in zip(axes[:, 0], panels):
        for key in keys:
            values = np.array([r.get(key, np.nan) for r in rows], dtype=float)
            logged = ~np.isnan(values)  # a key first logged part-way through is drawn from there on
            x = np.asarray(steps)[logged]
            (line,) = ax.plot(x, smooth(values[logged], args.window), label=key, lw=1.2)
            ax.plot(x, values[logged], color=line.get_color(), alpha=0.2, lw=0.6)
        for start in starts:
            ax.axvline(start, color="gray", ls=":", lw=0.8)
        for mark in args.mark:
            ax.axvline(mark, color="tab:red", ls="--", lw=0.6, alpha=0.6)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    label = "E/G step (dotted: the next run starts from the previous one's weights"
    axes[-1, 0].set_xlabel(label + ("; dashed: loss weights changed)" if args.mark else ")"))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(rows)} stats lines, {len(args.runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
