"""The README's pictures of the shipped weights: the astronaut talking, and one frame four ways.

Only public-domain pixels (NASA's astronaut, ``examples/astronaut.png``) and
landmark tracks (``examples/motions``) go in; never frames of ``../shared/data``.

1. ``docs/media/astronaut.gif``: the CLI (``python -m talking_head animate``)
   drives the astronaut with an example motion from the weights in ``--weights``,
   then every ``--gif-every``-th frame of its MP4 becomes a looping GIF.
2. ``docs/media/astronaut_strip.png``: the frame of that motion where the mouth
   is most open, as astronaut photo (framed) | warp only | FF (0 steps) |
   FT (``--steps`` fine-tuning steps), with the landmarks given to G (the driving motion retargeted to the astronaut) in a fifth
   panel on the left.

    python scripts/make_readme_media.py --weights weights --steps 20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Run from a checkout without installing the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.animation.finetune import finetune_person
from talking_head.animation.person import embed_person
from talking_head.animation.pipeline import animate_person, load_driving
from talking_head.face.landmarks import get_detector
from talking_head.media.video_reader import VideoReader
from talking_head.nets.model import TalkingHeadModel

PHOTO = ROOT / "examples" / "astronaut.png"
MOTIONS = ROOT / "examples" / "motions"
OUT = ROOT / "docs" / "media"


def make_gif(weights: str, motion: Path, seconds: float, every: int, out: Path) -> int:
    """The CLI's MP4 of the astronaut, every ``every``-th frame as a looping GIF; returns its frame count."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "astronaut.mp4"
        command = [
            sys.executable, "-m", "talking_head", "animate", "--photos", str(PHOTO), "--driving", str(motion),
            "--out", str(video), "--weights", weights, "--max-seconds", str(seconds), "--landmarks", "dlib",
            "--watermark",
        ]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT)
        with VideoReader(video) as reader:
            fps = reader.info.fps
            frames = [Image.fromarray(frame) for i, frame in enumerate(reader) if i % every == 0]
    frames[0].save(
        out,
        save_all=True,
        append_images=frames[1:],
        duration=round(1000 * every / fps),
        loop=0,
        optimize=True,
    )
    return len(frames)


def _label(image: np.ndarray, text: str) -> Image.Image:
    panel = Image.fromarray(image)
    draw = ImageDraw.Draw(panel)
    draw.rectangle((0, 0, 7 * len(text) + 8, 16), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return panel


def _frame(frames, index: int):
    """The ``index``-th of an iterator of animation frames."""
    for frame in frames:
        if frame.index == index:
            return frame
    raise ValueError(f"the motion has no frame {index}")


def make_strip(weights: str, motion: Path, steps: int, out: Path) -> int:
    """One driving frame as landmarks | astronaut | warp only | FF | FT; returns the frame's index."""
    model = TalkingHeadModel.from_pretrained(weights)
    detector = get_detector("dlib")
    person = embed_person(model, [str(PHOTO)], detector)
    driving = load_driving(str(motion), model.config.image_size, detector=detector)
    lips = driving.points[:, 62:68]  # inner lips: 62-64 upper, 65-67 lower
    index = int(np.argmax(np.linalg.norm(lips[:, 3] - lips[:, 1], axis=-1)))  # 66 below 62: widest opening
    ff = _frame(animate_person(model, person, driving), index)  # the whole motion: relative mode's reference
    tuned = finetune_person(model, person, steps) if steps else person
    ft = _frame(animate_person(model, tuned, driving), index)
    panels = [
        _label(ff.landmark_image, "target landmarks"),
        _label(person.shots[0], "photo"),
        _label(ff.warp, "warp only"),
        _label(ff.result, "FF, 0 steps"),
        _label(ft.result, f"FT, {steps} steps"),
    ]
    strip = Image.new("RGB", (sum(p.width for p in panels), panels[0].height))
    x = 0
    for panel in panels:
        strip.paste(panel, (x, 0))
        x += panel.width
    strip.save(out)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"), help="weights folder (default weights/)")
    parser.add_argument("--motion", default=str(MOTIONS / "calm-talking.npz"), help="driving track")
    parser.add_argument("--steps", type=int, default=20, help="fine-tuning steps of the FT panel")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of motion in the GIF")
    parser.add_argument("--gif-every", type=int, default=2, help="keep every n-th frame in the GIF")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    count = make_gif(args.weights, Path(args.motion), args.seconds, args.gif_every, OUT / "astronaut.gif")
    print(f"wrote {OUT / 'astronaut.gif'} ({count} frames)")
    index = make_strip(args.weights, Path(args.motion), args.steps, OUT / "astronaut_strip.png")
    print(f"wrote {OUT / 'astronaut_strip.png'} (driving frame {index})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
