"""The README's pictures, made from the shipped weights: the astronaut talking, one frame four ways, one hard case.

Only public-domain pixels (NASA's astronaut, ``examples/astronaut.png``) and
landmark tracks (``examples/motions``) go in; never frames of the research
clips (``docs/DATA.md``). Everything runs in ``--precision`` (fp32 by
default: the same pixels on every CPU) with PyTorch rendering, and
``docs/media/made_with.json`` records, for each picture, the command, the
steps, the precision and the machine (CPU model, family, bf16 units), which
the README's captions name.

1. ``docs/media/astronaut.gif``: the CLI (``python -m talking_head animate``,
   ``--output photo``: the whole photo at its own resolution, only the head
   moving) drives the astronaut with ``--motion`` and ``--steps`` fine-tuning steps
   (the app's CPU default), then every ``--gif-every``-th frame of its MP4
   becomes a looping GIF.
2. ``docs/media/astronaut_strip.png``: the frame of that motion where the
   mouth is most open: the landmarks given to G (the motion retargeted to the
   astronaut) | the photo (framed) | warp only | FF (0 steps) | FT.
3. ``docs/media/hard_case.png``: the hard case, a mouth driven wide open (the
   ``expressions`` motion's widest frame): the lip square of the landmarks,
   the warp, FF and FT of the whole-photo output, enlarged 3× (the face regions above them).

    python scripts/make_readme_media.py        # about 5 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TALKING_HEAD_RUNTIME", "torch")  # PyTorch rendering: the pixels do not depend on ONNX Runtime

import numpy as np
from PIL import Image, ImageDraw

# Run from a checkout without installing the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.animation.compositing import NativeCompositor
from talking_head.animation.finetune import finetune_person
from talking_head.animation.person import embed_person
from talking_head.animation.pipeline import animate_person, load_driving
from talking_head.evaluation.machine import machine_info
from talking_head.evaluation.metrics import mouth_box
from talking_head.face.framing import crop_image
from talking_head.face.landmarks import get_detector
from talking_head.media.video_reader import VideoReader
from talking_head.nets.model import TalkingHeadModel
from talking_head.web.limits import CPU_DEFAULT_STEPS

PHOTO = ROOT / "examples" / "astronaut.png"
MOTIONS = ROOT / "examples" / "motions"
OUT = ROOT / "docs" / "media"
RECORD = OUT / "made_with.json"
STILL_TOLERANCE = 48  # GIF frames: outside the box of changes larger than this (of 255), the first frame's pixels
ZOOM = 3  # the hard case's lip squares are shown this many times larger


def machine() -> dict[str, object]:
    """What the README's captions name: CPU model, family, bf16 units, threads, GPU."""
    info = machine_info()
    keys = ("cpu", "cpu_family_model", "cpu_bf16_flags", "cores", "torch", "torch_threads", "gpu", "summary")
    return {key: info[key] for key in keys}


def make_gif(
    weights: str, motion: Path, steps: int, precision: str, seconds: float, every: int, out: Path, output: str = "photo"
) -> list[str]:
    """The CLI's MP4 of the astronaut (``--output``: the whole photo by default), every ``every``-th frame as a
    looping GIF; returns the command."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "astronaut.mp4"
        command = [
            "python", "-m", "talking_head", "animate", "--photos", str(PHOTO.relative_to(ROOT)),
            "--driving", str(motion.relative_to(ROOT)), "--out", "out.mp4", "--steps", str(steps),
            "--weights", weights, "--max-seconds", f"{seconds:g}", "--landmarks", "dlib",
            "--precision", precision, "--watermark", "--output", output,
        ]  # fmt: skip
        run = [sys.executable, *command[1:]]
        run[run.index("out.mp4")] = str(video)
        subprocess.run(run, check=True, cwd=ROOT)
        with VideoReader(video) as reader:
            fps = reader.info.fps
            frames = [Image.fromarray(frame) for i, frame in enumerate(reader) if i % every == 0]
    save_gif(frames, out, round(1000 * every / fps))
    return command


def save_gif(frames: list[Image.Image], out: Path, duration: int) -> None:
    """A looping GIF with one palette for all frames: the still background keeps its indices, so each
    frame after the first stores only the moving head (a quarter of the bytes of a palette per frame)."""
    first = np.asarray(frames[0].convert("RGB"))
    rgb = [np.asarray(frame.convert("RGB")) for frame in frames]
    # Where the head moves: pixels that change by more than the video codec's noise in some frame, their box.
    moving = np.zeros(first.shape[:2], bool)
    for pixels in rgb[1:]:
        moving |= np.abs(pixels.astype(np.int16) - first).max(-1) > STILL_TOLERANCE
    rows, cols = np.nonzero(moving)
    box = np.zeros_like(moving)
    if len(rows):
        box[max(0, rows.min() - 8) : rows.max() + 9, max(0, cols.min() - 8) : cols.max() + 9] = True
    still = [np.where(box[..., None], pixels, first) for pixels in rgb]  # the codec's noise elsewhere: frame 0
    palette = Image.fromarray(first).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    indexed = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in still]
    indexed[0].save(out, save_all=True, append_images=indexed[1:], duration=duration, loop=0, optimize=False)


def _label(image: np.ndarray, text: str) -> Image.Image:
    panel = Image.fromarray(np.ascontiguousarray(image))
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


def _row(panels: list[Image.Image]) -> Image.Image:
    strip = Image.new("RGB", (sum(p.width for p in panels), max(p.height for p in panels)))
    x = 0
    for panel in panels:
        strip.paste(panel, (x, 0))
        x += panel.width
    return strip


def _widest_mouth(points: np.ndarray) -> int:
    """The frame where the inner lips are furthest apart (66 below 62)."""
    lips = points[:, 62:68]  # inner lips: 62-64 upper, 65-67 lower
    return int(np.argmax(np.linalg.norm(lips[:, 4] - lips[:, 0], axis=-1)))


def people(model: TalkingHeadModel, steps: int, precision: str):
    """The astronaut embedded (FF), and fine-tuned ``steps`` steps (FT)."""
    person = embed_person(model, [str(PHOTO)], get_detector("dlib"))
    return person, (finetune_person(model, person, steps, precision=precision) if steps else person)


def _whole_photo(person, frame, image: np.ndarray) -> np.ndarray:
    """``image`` (G's crop, or the warp) composited into the whole photo at its own size, as the app outputs
    it (``--output photo``), shown as the photo's face region at 256²."""
    whole = NativeCompositor.for_person(person, "photo")(np.clip(np.rint(image), 0, 255).astype(np.uint8), frame.landmarks)
    return crop_image(whole, person.source_box, frame.result.shape[0])


def _widest_frames(model: TalkingHeadModel, pair, motion: Path, precision: str):
    """(index, FF frame, FT frame) at the frame of ``motion`` where the mouth is widest."""
    driving = load_driving(str(motion), model.config.image_size, detector=get_detector("dlib"))
    index = _widest_mouth(driving.points)
    # The whole motion is rendered: relative mode measures it from the motion's most neutral frame.
    ff, ft = (_frame(animate_person(model, person, driving, precision=precision), index) for person in pair)
    return index, ff, ft


def make_strip(model: TalkingHeadModel, pair, motion: Path, steps: int, precision: str, out: Path) -> int:
    """One driving frame as landmarks | astronaut | warp only | FF | FT; returns the frame's index."""
    index, ff, ft = _widest_frames(model, pair, motion, precision)
    panels = [
        _label(ff.landmark_image, "target landmarks"),
        _label(pair[0].shots[0], "photo"),
        _label(_whole_photo(pair[0], ff, ff.warp), "warp only"),
        _label(_whole_photo(pair[0], ff, ff.result), "FF, 0 steps"),
        _label(_whole_photo(pair[1], ft, ft.result), f"FT, {steps} steps"),
    ]
    _row(panels).save(out)
    return index


def make_hard_case(model: TalkingHeadModel, pair, motion: Path, steps: int, precision: str, out: Path) -> int:
    """The widest-open mouth of ``motion``: whole frames above their lip squares enlarged ``ZOOM``×."""
    index, ff, ft = _widest_frames(model, pair, motion, precision)
    x0, y0, x1, y1 = mouth_box(ff.landmarks, model.config.image_size)
    names = ("target landmarks", "warp only", "FF, 0 steps", f"FT, {steps} steps")
    images = (
        ff.landmark_image,
        _whole_photo(pair[0], ff, ff.warp),
        _whole_photo(pair[0], ff, ff.result),
        _whole_photo(pair[1], ft, ft.result),
    )
    side = ZOOM * (x1 - x0)
    columns = []
    for name, image in zip(names, images):
        frame = _label(image, name)
        lips = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).resize((side, side), Image.LANCZOS)
        column = Image.new("RGB", (max(frame.width, side), frame.height + side), (255, 255, 255))
        column.paste(frame, ((column.width - frame.width) // 2, 0))
        column.paste(lips, ((column.width - side) // 2, frame.height))
        columns.append(column)
    _row(columns).save(out)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="weights", help="weights folder (default weights/, the shipped ones)")
    parser.add_argument("--motion", default=str(MOTIONS / "calm-talking.npz"), help="driving track of the GIF and strip")
    parser.add_argument("--hard-motion", default=str(MOTIONS / "expressions.npz"), help="driving track of the hard case")
    parser.add_argument("--steps", type=int, default=CPU_DEFAULT_STEPS, help="fine-tuning steps (default: the app's)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"), help="default fp32")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of motion in the GIF")
    parser.add_argument("--gif-every", type=int, default=2, help="keep every n-th frame in the GIF")
    parser.add_argument("--output", default="photo", help="the GIF's animate --output (default: the whole photo)")
    parser.add_argument("--gif-only", action="store_true", help="make the GIF only, not the strip and the hard case")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    here = machine()
    print(here["summary"], flush=True)
    common = {"weights": args.weights, "steps": args.steps, "precision": args.precision, "rendering": "PyTorch", "machine": here}
    script = f"python scripts/make_readme_media.py --steps {args.steps} --precision {args.precision}"

    gif = (args.steps, args.precision, args.seconds, args.gif_every, OUT / "astronaut.gif", args.output)
    command = make_gif(args.weights, Path(args.motion), *gif)
    record["astronaut.gif"] = {**common, "command": " ".join(command), "made_by": script}
    print(f"wrote {OUT / 'astronaut.gif'}", flush=True)
    if args.gif_only:
        RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return 0

    model = TalkingHeadModel.from_pretrained(args.weights)
    pair = people(model, args.steps, args.precision)
    index = make_strip(model, pair, Path(args.motion), args.steps, args.precision, OUT / "astronaut_strip.png")
    record["astronaut_strip.png"] = {**common, "driving_frame": index, "motion": Path(args.motion).name, "made_by": script}
    print(f"wrote {OUT / 'astronaut_strip.png'} (driving frame {index})", flush=True)

    index = make_hard_case(model, pair, Path(args.hard_motion), args.steps, args.precision, OUT / "hard_case.png")
    record["hard_case.png"] = {**common, "driving_frame": index, "motion": Path(args.hard_motion).name, "made_by": script}
    print(f"wrote {OUT / 'hard_case.png'} (driving frame {index})", flush=True)
    RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
