"""``python -m talking_head landmarks``: landmarks of a photo or clip, as an overlay and a track file.

Example::

    python -m talking_head landmarks clip.mp4 --out overlay.mp4 --save tracks.npz --backend dlib
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from talking_head.animation.overlay import check_overlay_path, describe_track, landmark_overlay, media_kind
from talking_head.errors import TalkingHeadError, UnsupportedFileError
from talking_head.face.landmarks import BACKENDS, get_detector

logger = logging.getLogger("talking_head.cli.landmarks")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``landmarks`` command's arguments to ``parser``."""
    parser.add_argument("input", metavar="INPUT", help="a photo (.jpg, .png, ...) or a clip (.mp4, .mov, ...)")
    parser.add_argument(
        "--out", metavar="OVERLAY",
        help="overlay to write: .png (or .jpg) for a photo, .mp4 for a clip (same frames, fps and audio)",
    )
    parser.add_argument(
        "--save", metavar="TRACKS.npz",
        help="write the landmark track (.npz: points (T,68,2), boxes, found, fps, backend); T = 1 for a photo",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="auto",
        help="landmark detector: fan (face-alignment), dlib (offline), or auto (FAN if its weights load; "
        "env TALKING_HEAD_LANDMARKS overrides auto)",
    )
    parser.add_argument(
        "--max-seconds", type=_positive_float, default=None, metavar="S", help="only process the first S seconds of a clip"
    )
    parser.add_argument("--device", default=None, help="torch device for FAN (default: cuda if available, else cpu)")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """Detect/track, write the overlay and the track, print a one-line summary."""
    # Check the cheap things (input type, output suffixes) before loading a detector.
    kind = media_kind(args.input)
    if args.out is not None:
        check_overlay_path(args.out, kind)
    if args.save is not None and not args.save.lower().endswith(".npz"):
        raise UnsupportedFileError(f"--save must name a .npz file, not '{args.save}'. Use e.g. 'tracks.npz'.")
    if args.save is not None and not Path(args.save).resolve().parent.is_dir():
        raise TalkingHeadError(f"Cannot write '{args.save}': its folder does not exist. Create it first.")
    if args.out is None and args.save is None:
        logger.info("Neither --out nor --save given: only printing the summary")

    detector = get_detector(args.backend, device=args.device)
    with _ProgressBars(disable=kind == "photo") as bars:
        result = landmark_overlay(args.input, detector, out=args.out, max_seconds=args.max_seconds, progress=bars)
    if args.save is not None:
        result.track.save(args.save)
    print(f"{args.input}: {describe_track(result.track)}")
    if result.overlay_path is not None:
        logger.info("Overlay written to %s (%d frames)", result.overlay_path, result.frames_out)
    if args.save is not None:
        logger.info("Track written to %s", args.save)
    return 0


class _ProgressBars:
    """One tqdm bar per stage ("landmarks", then "overlay"), fed by ``landmark_overlay``'s progress."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self._bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            for finished in self._bars.values():  # stages run one after the other
                finished.close()
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="frame", disable=self.disable)
        bar.update(done - bar.n)

    def __enter__(self) -> _ProgressBars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for bar in self._bars.values():
            bar.close()
