"""The README's Edit-tab picture: the astronaut edited by the shipped weights, as the Edit tab renders her.

Each tile is the face region of one still that the Edit tab (and the
``/edit`` endpoint) returns for the public-domain astronaut photo with the
weights in ``weights/``, feed-forward, fp32, PyTorch rendering, the visible
"SYNTHETIC" mark on: the photo, then four edits, then the landmark panel of
the last one (the edited landmarks drawn on the rendered face). Writes
``docs/media/edit_tab.png``, records the command, weights, precision and
machine under its name in ``docs/media/made_with.json`` (the README's
caption names them), and prints each render's time.

    python scripts/make_edit_picture.py        # about 10 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TALKING_HEAD_RUNTIME", "torch")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.animation.editing import PersonCache, landmarks_beside, render_edit
from talking_head.animation.pipeline import load_model, mark_synthetic
from talking_head.evaluation.machine import machine_info
from talking_head.face.edits import EditSettings
from talking_head.face.landmarks import get_detector

PHOTO = ROOT / "examples" / "astronaut.png"
OUT = ROOT / "docs" / "media" / "edit_tab.png"
RECORD = ROOT / "docs" / "media" / "made_with.json"
TILE = 256
EDITS = {
    "mouth open 0.6, smile 0.5": EditSettings(mouth_open=0.6, smile=0.5),
    "both eyes -1 (closed)": EditSettings(left_eye=-1.0, right_eye=-1.0),
    "brows 1, mouth open 0.3": EditSettings(brows=1.0, mouth_open=0.3),
    "roll 12, yaw 0.5": EditSettings(roll=12.0, yaw=0.5),
}


def _face_tile(image: np.ndarray, box) -> np.ndarray:
    """The crop box's region of a still, ``TILE`` px a side (the tile shows the face, the still is the whole photo)."""
    x0, y0 = max(0, int(box.x0)), max(0, int(box.y0))
    x1, y1 = min(image.shape[1], int(box.x0 + box.size)), min(image.shape[0], int(box.y0 + box.size))
    return cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (TILE, TILE), interpolation=cv2.INTER_AREA)


def _captioned(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((28, TILE, 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([tile, bar])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    info = machine_info()
    print(info["summary"], "; fp32, PyTorch rendering", flush=True)
    model = load_model(args.weights, device="cpu")
    person = PersonCache(1).person(model, PHOTO, get_detector("dlib"))
    box = person.source_box
    tiles = [_captioned(_face_tile(person.source_image, box), "the photo")]
    result = None
    for caption, settings in EDITS.items():
        result = render_edit(model, person, settings, precision="fp32", runtime="torch")
        print(f"{caption}: {result.image.shape[1]}x{result.image.shape[0]} still in {result.seconds * 1000:.0f} ms")
        tiles.append(_captioned(mark_synthetic(_face_tile(result.image, box)), caption))  # the mark on each tile
    panel = cv2.resize(landmarks_beside(result), (TILE, TILE), interpolation=cv2.INTER_AREA)
    tiles.append(_captioned(panel, "its landmarks, as G got them"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out}")
    _record(args.out.name, Path(args.weights), info)
    return 0


def _record(name: str, weights: Path, info: dict) -> None:
    """This picture's entry in made_with.json (the other entries are kept as they are)."""
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    keys = ("cpu", "cpu_family_model", "cpu_bf16_flags", "cores", "torch", "torch_threads", "gpu", "summary")
    shipped = weights.resolve() == (ROOT / "weights").resolve()
    record[name] = {
        "made_by": "python scripts/make_edit_picture.py",
        "weights": "weights" if shipped else str(weights),
        "precision": "fp32",
        "rendering": "PyTorch",
        "steps": 0,
        "edits": list(EDITS),
        "machine": {key: info[key] for key in keys},
    }
    RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
