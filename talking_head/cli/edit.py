"""``python -m talking_head edit``: edit a portrait's expression by its landmarks and write one still."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from talking_head.cli.options import add_weights_arguments
from talking_head.face.edits import EDIT_RANGES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# (option, help) per edit; the ranges come from talking_head.face.edits.EDIT_RANGES.
EDIT_OPTIONS = {
    "mouth_open": "open the mouth (1: widest) or close it (-1)",
    "smile": "lift and widen the mouth corners (1), or lower them (-1)",
    "pout": "purse the lips (1) or stretch them wide (-1)",
    "left_eye": "eye on the image's left: -1 closed, 1 wide open",
    "right_eye": "eye on the image's right: -1 closed, 1 wide open",
    "brows": "raise (1) or lower (-1) the eyebrows",
    "roll": "head roll in degrees, clockwise in the image (-30..30)",
    "yaw": "turn the head, -1..1 (±20°), positive towards the image's right",
    "pitch": "nod the head, -1..1 (±15°), positive chin up",
}


def _amount(name: str):  # -> argparse type
    low, high = EDIT_RANGES[name]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``edit`` command."""
    parser.add_argument("photo", metavar="PHOTO", help="the portrait to edit")
    parser.add_argument("--out", required=True, metavar="OUT.png", help="the edited still (.png, .jpg, .webp)")
    for name, help_text in EDIT_OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_amount(name), default=0.0, help=help_text)
    parser.add_argument(
        "--landmarks-out", metavar="PANEL.png", help="also write the rendered face with the edited landmarks drawn on it"
    )
    add_weights_arguments(parser)
    parser.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), help="default: $TALKING_HEAD_PRECISION or auto"
    )
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument(
        "--landmarks", choices=("auto", "fan", "dlib"), help="landmark detector (default: $TALKING_HEAD_LANDMARKS or auto)"
    )
    parser.add_argument("--watermark", action="store_true", help="draw a visible 'SYNTHETIC' mark")


def _check_paths(args: argparse.Namespace) -> None:
    from talking_head.errors import TalkingHeadError

    if not Path(args.photo).is_file():
        raise TalkingHeadError(f"photo {args.photo} does not exist; give the path of a portrait")
    for option, path in (("--out", args.out), ("--landmarks-out", args.landmarks_out)):
        if path is not None and Path(path).suffix.lower() not in IMAGE_SUFFIXES:
            raise TalkingHeadError(f"{option} {path}: use a file name ending in {', '.join(IMAGE_SUFFIXES)}")


def _write(path: str, image) -> None:  # image: (H, W, 3) uint8 RGB
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def run(args: argparse.Namespace) -> int:
    """Embed the photo, render the edited still, write it (and the landmark panel)."""
    from talking_head.animation import pipeline
    from talking_head.animation.editing import edit_photo, landmarks_beside
    from talking_head.face.edits import EditSettings
    from talking_head.face.landmarks import get_detector

    _check_paths(args)
    settings = EditSettings(**{name: getattr(args, name) for name in EDIT_OPTIONS})
    model = pipeline.load_model(args.weights, device=args.device, revision=args.revision)
    detector = get_detector(args.landmarks) if args.landmarks else get_detector()
    result = edit_photo(model, args.photo, settings, detector, precision=args.precision)
    image = pipeline.mark_synthetic(result.image) if args.watermark else result.image
    _write(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}); rendering {result.seconds * 1000:.0f} ms")
    if args.landmarks_out:
        _write(args.landmarks_out, landmarks_beside(result))
        print(f"wrote {args.landmarks_out}")
    return 0
