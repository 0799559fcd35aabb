"""The README's closed-mouth example: the astronaut with her lips closed, then driven to open them.

The only photo the project may ship smiles with her teeth showing (the easy
case). For a closed mouth without anyone else's photo, the shipped weights
first close her lips (the Edit tab's ``mouth_open = -1``, as ``python -m
talking_head edit`` renders it); that still is then the photo, driven by
the ``expressions`` example motion, feed-forward, whole-photo output. The
picture is the face of the closed-mouth still beside the frame whose
re-detected mouth is widest open: what G paints where the photo shows no
teeth. ``docs/media/made_with.json`` records the commands and the machine.

    python scripts/make_closed_mouth_example.py       # about a minute on 2 CPU cores
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_screenshot import record_picture  # noqa: E402
from PIL import Image  # noqa: E402

from talking_head.__main__ import main as cli  # noqa: E402
from talking_head.evaluation.machine import machine_info  # noqa: E402
from talking_head.face.edits import inner_lip_gap  # noqa: E402
from talking_head.face.landmarks import get_detector  # noqa: E402
from talking_head.media.images import load_image  # noqa: E402
from talking_head.media.video_reader import VideoReader  # noqa: E402

PHOTO = ROOT / "examples" / "astronaut.png"
MOTION = ROOT / "examples" / "motions" / "expressions.npz"
OUT = ROOT / "docs" / "media" / "closed_mouth.png"
FACE = (150, 60, 370, 300)  # x0, y0, x1, y1 of the face in the 512² photo
SCALE = 1.5


def _face(image: np.ndarray) -> Image.Image:
    x0, y0, x1, y1 = FACE
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    return crop.resize((round((x1 - x0) * SCALE), round((y1 - y0) * SCALE)), Image.LANCZOS)


def main() -> int:
    info = machine_info()
    print(info["summary"], flush=True)
    edit = ["edit", str(PHOTO), "--mouth-open", "-1", "--precision", "fp32", "--weights", "weights"]
    animate = ["animate", "--driving", str(MOTION), "--steps", "0", "--weights", "weights", "--landmarks", "dlib",
               "--precision", "fp32", "--output", "photo"]
    with tempfile.TemporaryDirectory() as folder:
        closed, video = Path(folder) / "closed.png", Path(folder) / "open.mp4"
        cli([*edit, "--out", str(closed)])
        cli([*animate, "--photos", str(closed), "--out", str(video)])
        still = load_image(closed)
        with VideoReader(video) as reader:
            frames = list(reader)
    detector = get_detector("dlib")
    gaps = [inner_lip_gap(detector.detect(frame).points) for frame in frames]
    widest = int(np.argmax(gaps))
    left, right = _face(still), _face(frames[widest])
    picture = Image.new("RGB", (left.width + right.width + 8, left.height), "white")
    picture.paste(left, (0, 0))
    picture.paste(right, (left.width + 8, 0))
    picture.save(OUT)
    print(f"wrote {OUT}: frame {widest}, re-detected inner-lip gap {gaps[widest]:.3f} (still: {inner_lip_gap(detector.detect(still).points):.3f})")
    entry = {
        "made_by": "python scripts/make_closed_mouth_example.py",
        "commands": ["python -m talking_head " + " ".join(edit), "python -m talking_head " + " ".join(animate)],
        "weights": "weights",
        "precision": "fp32",
        "steps": 0,
        "motion": MOTION.name,
        "driving_frame": widest,
    }
    keys = ("cpu", "cpu_family_model", "cpu_bf16_flags", "cores", "torch", "gpu", "summary")
    record_picture("closed_mouth.png", entry, info, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
