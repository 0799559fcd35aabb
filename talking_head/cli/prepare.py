"""``python -m talking_head prepare``: clips → framed crops + landmarks + manifest for meta-learning.

Example::

    python -m talking_head prepare --videos videos/train --out data/prepared/train --workers 2
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from talking_head.face.landmarks import BACKENDS
from talking_head.training.prepare import PrepareOptions, prepare_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``prepare`` command's arguments to ``parser``."""
    defaults = PrepareOptions()
    parser.add_argument(
        "--videos",
        required=True,
        metavar="DIR",
        help="folder of <identity>/<clip>.mp4 (or VoxCeleb2 id/video/clip.mp4)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DATA",
        help="output folder (manifest.jsonl + clips/); rerun to resume",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes, each with its own detector (default 1)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=defaults.max_frames,
        metavar="F",
        help=f"frames sampled evenly per clip (default {defaults.max_frames})",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=defaults.image_size,
        metavar="PX",
        help=f"side of the stored crops (default {defaults.image_size})",
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=defaults.min_frames,
        help=f"skip clips with fewer face frames (default {defaults.min_frames})",
    )
    parser.add_argument(
        "--min-face-size",
        type=float,
        default=defaults.min_face_size,
        metavar="PX",
        help=f"skip clips whose face crop is smaller (default {defaults.min_face_size:.0f})",
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=defaults.jpeg_quality,
        help=f"JPEG quality (default {defaults.jpeg_quality})",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="landmark detector (auto: FAN if its weights load, else dlib)",
    )
    parser.add_argument(
        "--retry-skipped", action="store_true", help="process clips skipped by an earlier run again"
    )


def _progress(results: Iterable[Any], total: int) -> Iterable[Any]:
    return tqdm(results, total=total, unit="clip", desc="prepare")


def run(args: argparse.Namespace) -> int:
    """Prepare the clips and print a summary."""
    options = PrepareOptions(
        image_size=args.size,
        max_frames=args.frames,
        min_frames=args.min_frames,
        min_face_size=args.min_face_size,
        jpeg_quality=args.quality,
        backend=args.backend,
    )
    summary = prepare_dataset(
        args.videos,
        args.out,
        options,
        workers=args.workers,
        retry_skipped=args.retry_skipped,
        progress=_progress,
    )
    print(summary.describe())
    return 0
