"""Issue 23's acceptance measurements: native-resolution whole-photo output against today's paste-back.

For each photo of ``--photos`` whose longer side is at least 768 px and that
has a usable face, the shipped weights animate it feed-forward (0 steps) with
an example motion, and every frame is made twice: the whole photo composited
at its own resolution (:class:`~talking_head.animation.compositing.NativeCompositor`,
longer side at most ``--limit``) and G's 256² crop pasted back into the photo
(``framing.paste_back``, today's path). Printed per photo, medians over frames:

- ``face``: sharpness (variance of the Laplacian, :func:`~talking_head.evaluation.metrics.sharpness`)
  in the face box (the photo's landmarks' box) of the output, divided by the
  same box of the photo itself at the output's resolution (≥ 0.8 wanted);
- ``seam``: how much the compositing softens (or sharpens) the output just
  inside the blend boundary against just outside it: in each band, the
  output's sharpness over the same band of the photo *moved the same way*
  (Lanczos-4 at the positions the output sampled, nothing of G's); the
  smaller ratio over the larger (≥ 0.8 wanted). Native: the bands inside and
  outside the contour where the head mask falls to 0.5; paste-back, whose
  inside is G's, against the photo itself, inside and outside the crop's
  border. In parentheses, the native bands against the unmoved photo: a
  head that moves carries hair-against-background edges into or out of a
  band, so that ratio measures the motion, not the compositing (0.13 on a
  tilting head over a plain red background whose output shows no seam);
- ``background``: the largest over frames of the mean absolute change outside
  twice the face box, in 1/255 (≤ 2 wanted);
- ``ms``: wall time per frame of the 256² path (landmarks → warp → G → the
  crop) and of the native path (the same frames composited into the whole
  photo), alternated three times in the same run (medians).

The frames are compared before video encoding and without the visible mark.
Photos are research data (``docs/DATA.md``): nothing is written.

    nice -n 10 python scripts/measure_native.py --frames 16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.animation.compositing import FINE, NativeCompositor, head_mask
from talking_head.animation.person import embed_person
from talking_head.animation.pipeline import animate_person, load_driving
from talking_head.animation.rendering import rendering_setup
from talking_head.errors import TalkingHeadError
from talking_head.evaluation.machine import machine_info
from talking_head.evaluation.metrics import sharpness
from talking_head.face.framing import paste_back, points_from_crop
from talking_head.face.landmarks import get_detector
from talking_head.media.images import load_image
from talking_head.nets.model import TalkingHeadModel

INTERPOLATIONS = {"lanczos4": cv2.INTER_LANCZOS4, "cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}
BAND = 12  # width in output pixels of the bands either side of a blend boundary


def _box(points: np.ndarray, shape: tuple[int, int], scale: float = 1.0) -> tuple[slice, slice]:
    low, high = points.min(0), points.max(0)
    centre, half = (low + high) / 2, (high - low) / 2 * scale
    x0, y0 = np.maximum(0, np.floor(centre - half)).astype(int)
    x1, y1 = np.minimum((shape[1], shape[0]), np.ceil(centre + half)).astype(int)
    return slice(y0, y1), slice(x0, x1)


def _band_sharpness(image: np.ndarray, band: np.ndarray) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F)[band].var())


def _bands(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bands of :data:`BAND` px just inside and just outside the boundary of the boolean region."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND + 1, 2 * BAND + 1))
    region = inside.astype(np.uint8)
    return (region - cv2.erode(region, kernel)).astype(bool), (cv2.dilate(region, kernel) - region).astype(bool)


def _seam(output: np.ndarray, reference: np.ndarray, bands: tuple[np.ndarray, np.ndarray]) -> float:
    ratios = [_band_sharpness(output, band) / max(_band_sharpness(reference, band), 1e-6) for band in bands]
    return min(ratios) / max(max(ratios), 1e-6)


def _crop_region(box, shape: tuple[int, int]) -> np.ndarray:
    region = np.zeros(shape, bool)
    x0, y0 = max(0, round(box.x0)), max(0, round(box.y0))
    region[y0 : max(y0, round(box.y0 + box.size)), x0 : max(x0, round(box.x0 + box.size))] = True
    return region


class _Scores:
    """Per-frame measures of one output kind against its photo."""

    def __init__(self, photo: np.ndarray, face: np.ndarray, bands: tuple[np.ndarray, np.ndarray]) -> None:
        self.photo, self.bands = photo, bands
        self.face_box, self.far = _box(face, photo.shape[:2]), np.ones(photo.shape[:2], bool)
        self.far[_box(face, photo.shape[:2], 2.0)] = False
        self.reference = sharpness(photo[self.face_box])
        self.face, self.seam, self.seam_unmoved, self.background = [], [], [], []

    def add(self, output: np.ndarray, moved: np.ndarray | None = None) -> None:
        """One output frame; ``moved``: the photo moved as it was (the seam's reference; else the photo)."""
        self.face.append(sharpness(output[self.face_box]) / self.reference)
        self.seam.append(_seam(output, self.photo if moved is None else moved, self.bands))
        self.seam_unmoved.append(_seam(output, self.photo, self.bands))
        change = np.abs(output.astype(np.int16) - self.photo)[self.far].mean() if self.far.any() else 0.0
        self.background.append(float(change))

    def line(self, unmoved: bool = False) -> str:
        extra = f" ({np.median(self.seam_unmoved):.2f})" if unmoved else ""
        return f"face {np.median(self.face):.2f}  seam {np.median(self.seam):.2f}{extra}  background {max(self.background):5.2f}/255"


def _moved_photo(compositor: NativeCompositor, displacement: np.ndarray) -> np.ndarray:
    """The photo moved by the frame's field as the output moved it (Lanczos-4, the still photo elsewhere)."""
    y0, y1, x0, x1 = compositor.region
    moved = compositor.still.copy()
    positions = compositor.photo_map(displacement)
    moved[y0:y1, x0:x1] = cv2.remap(compositor.canvas.photo, positions, None, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT101)
    return moved


def _frames(model, person, motion, args: argparse.Namespace):
    return animate_person(model, person, motion, batch_size=8, precision=args.precision, runtime=args.runtime)


def _timings(model, person, motion, compositor, args: argparse.Namespace, repeats: int = 3) -> tuple[float, float]:
    """Wall ms a frame of the 256² path (G's crops, consumed) and of the native path (the same, composited),
    alternated ``repeats`` times in this run; the medians."""
    base, native = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for _frame in _frames(model, person, motion, args):
            pass
        base.append((time.perf_counter() - start) * 1000 / len(motion))
        start = time.perf_counter()
        for _frame, _output in compositor.frames(_frames(model, person, motion, args)):
            pass
        native.append((time.perf_counter() - start) * 1000 / len(motion))
    return float(np.median(base)), float(np.median(native))


def measure(model, detector, path: Path, args: argparse.Namespace) -> dict | None:
    try:
        photo = load_image(path)
        if max(photo.shape[:2]) < 768:
            return None
        person = embed_person(model, [photo], detector=detector)
    except TalkingHeadError:
        return None
    size = model.config.image_size
    motion = load_driving(args.motion, size)
    motion.points = motion.points[: args.frames]
    compositor = NativeCompositor(
        person.source_image, person.source_box, person.shots[0], person.shot_landmarks[0], "photo", args.limit,
        INTERPOLATIONS[args.interpolation], args.fine,
    )
    compositor.given_warps = True  # one photo: G's warp input is this shot warped (as in for_person)
    canvas = compositor.canvas
    face_native = points_from_crop(person.source_landmarks, canvas.box, size)
    face_full = points_from_crop(person.source_landmarks, person.source_box, size)
    mask = head_mask(face_native, canvas.photo.shape[:2])
    native = _Scores(canvas.photo, face_native, _bands(mask >= 0.5))
    pasted = _Scores(person.source_image, face_full, _bands(_crop_region(person.source_box, person.source_image.shape[:2])))
    batch = []
    for frame in _frames(model, person, motion, args):
        batch.append(frame)
        if len(batch) < 8 and frame.index + 1 < len(motion):
            continue
        fields = compositor.fields(np.stack([f.landmarks for f in batch]))
        for f, field in zip(batch, fields):
            native.add(compositor(f.result, f.landmarks, field), _moved_photo(compositor, field[0]))
            pasted.add(paste_back(person.source_image, f.result, person.source_box))
        batch = []
    base_ms, native_ms = _timings(model, person, motion, compositor, args)
    out_h, out_w = canvas.photo.shape[:2]
    print(f"{path.name} {photo.shape[1]}×{photo.shape[0]} → {out_w}×{out_h}, face box {np.ptp(face_native[:, 0]):.0f} px")
    print(f"   native      {native.line(unmoved=True)}")
    print(f"   paste-back  {pasted.line()}")
    print(f"   ms/frame    256² path {base_ms:.1f}, native path {native_ms:.1f} ({native_ms / base_ms:.2f}×)")
    return {"native": native, "pasted": pasted, "base_ms": base_ms, "native_ms": native_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--names", nargs="*", help="only these files of --photos")
    parser.add_argument("--motion", type=Path, default=ROOT / "examples" / "motions" / "head-tilts.npz")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--limit", type=int, default=1024)
    parser.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default="cubic", help="sampling of the upsampled photo")
    parser.add_argument("--fine", type=int, default=FINE, help="the photo is upsampled this × (Lanczos-4) before sampling")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="G's precision")
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch", help="G's runtime")
    parser.add_argument("--count", type=int, default=10, help="stop after this many measured photos")
    args = parser.parse_args()
    model = TalkingHeadModel.from_pretrained(args.weights, device="cpu").eval().requires_grad_(False)
    args.precision, args.runtime = rendering_setup(model, args.precision, args.runtime)  # resolved once
    print(
        machine_info()["summary"],
        f"| G in {args.precision.policy} ({args.runtime.name}), compositing in float32 (OpenCV: the photo upsampled "
        f"{args.fine}× with Lanczos-4, sampled {args.interpolation})",
    )
    detector = get_detector()
    names = args.names or sorted(os.listdir(args.photos))
    results = []
    for name in names:
        result = measure(model, detector, args.photos / name, args)
        if result is not None:
            results.append(result)
        if len(results) >= args.count:
            break
    for kind in ("native", "pasted"):
        face = [np.median(r[kind].face) for r in results]
        seam = [np.median(r[kind].seam) for r in results]
        passing = sum(f >= 0.8 for f in face), sum(s >= 0.8 for s in seam)
        background = [max(r[kind].background) for r in results]
        print(
            f"{kind:7s} over {len(results)} photos: face sharpness min {min(face):.2f} median {np.median(face):.2f} "
            f"(≥ 0.8 on {passing[0]}); seam min {min(seam):.2f} (≥ 0.8 on {passing[1]}); "
            f"background max {max(background):.2f}/255"
        )
    ratio = [r["native_ms"] / r["base_ms"] for r in results]
    print(f"native path / 256² path per frame: median {np.median(ratio):.2f}, max {max(ratio):.2f}")


if __name__ == "__main__":
    main()
