"""Issue 26's acceptance measurements: do the edits and motion controls do what they say, on real photos?

For each photo of ``--photos`` with a usable face and a closed mouth (inner-lip
gap below ``--closed`` inter-ocular distances), the shipped weights render,
feed-forward, and the dlib detector re-detects the landmarks on each result
(the still at the photo's size, as the Edit tab shows it). Every distance is
in inter-ocular distances (outer eye corners) of the re-detected reference:

- ``open``: inner-lip gap with ``mouth_open = 1`` (≥ 0.15 wanted);
- ``eyes``: mean eyelid gap of both eyes with both eyes at -1 (< 0.03 wanted),
  as the Edit tab renders it (the closed lids painted from the photo's lid
  skin, ``face/lids.py``); ``eyes G``: the same without the painted lids
  (G's render alone);
- ``leak``: per region edit (mouth open, both eyes closed, brows up), the mean
  displacement of the re-detected points of the *other* regions (mouth,
  eyes, brows) against the re-detected points of the unedited render (< 0.02);
- ``lips only``: an example motion (every ``--stride``-th frame) with region
  ``lips``: the largest over frames of the mean displacement of the eye and
  brow points against the unedited render (< 0.02);
- ``mult0 only``: the same motion with multiplier 0 (region ``all``): the largest
  over frames of the mean displacement of mouth, eye and brow points, after
  a similarity alignment on the stable points (the head still moves), against
  the unedited render;
- ``lips photo`` and ``mult0 photo``: the same two against the points
  re-detected on the photo itself (the acceptance's wording; includes how far
  G's unedited render already is from the photo);
- each of the four as ``animate_person`` renders it (the warp outside the
  parts the controls move, ``face/control_masks.py``) and, with `` G``
  appended (``lips only G``), as G alone renders it (before that mask);
  with `` exact`` appended (against the photo only), dlib on the photo's own
  crop moved by each frame's head pose as an exact similarity (for lips
  only, the unmoved crop): what a perfect render of the photo's expression
  reads, dlib's floor;
- ``lips eye px`` and ``mult0 eye px`` (`` G``: G alone): the worst frame's
  mean absolute difference (levels) over the eyes and brows between the
  rendered crop and that exact one.

``--blink-floor CLIPS`` also re-detects, on the 256-px crops of prepared
training clips (``data/train_all/clips``), the frame of each clip whose stored
landmarks have the smallest eyelid gap, where that is below 0.025: real
closed eyes, the floor of what dlib reads for a closed eye at crop size.

Photos are research data (``docs/DATA.md``): nothing is written.

    nice -n 10 python scripts/measure_edits.py --max-photos 12 --blink-floor data/train_all/clips
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TALKING_HEAD_RUNTIME", "torch")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.animation.editing import PersonCache, render_edit
from talking_head.animation.pipeline import load_driving, load_model
from talking_head.animation.rendering import rendered_batches, rendering_setup
from talking_head.errors import TalkingHeadError
from talking_head.evaluation.machine import machine_info
from talking_head.face import edits
from talking_head.face.control_masks import controlled_result, rendered_mask, rendered_regions
from talking_head.face.framing import paste_back
from talking_head.face.landmarks import get_detector
from talking_head.face.motion import STABLE_POINTS, apply_affine, fit_similarity, retarget_landmarks
from talking_head.face.motion_controls import MotionControls, apply_motion_controls, head_poses

REGION_EDITS = {
    "mouth": edits.EditSettings(mouth_open=1.0),
    "eyes": edits.EditSettings(left_eye=-1.0, right_eye=-1.0),
    "brows": edits.EditSettings(brows=1.0),
}


def _iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[45] - points[36]))


def _moved(a: np.ndarray, b: np.ndarray, indices: list[int]) -> float:
    """Mean displacement of ``indices`` between two landmark sets, in iod of ``a``."""
    return float(np.linalg.norm(a[indices] - b[indices], axis=1).mean() / _iod(a))


def _detect(detector, image: np.ndarray) -> np.ndarray | None:
    try:
        return np.asarray(detector.detect(image).points, dtype=np.float32)
    except TalkingHeadError:
        return None


def _eyes_gap(points: np.ndarray) -> float:
    return (edits.eyelid_gap(points, "left") + edits.eyelid_gap(points, "right")) / 2


def _render_without_lids(model, person, settings: edits.EditSettings, precision: str) -> np.ndarray:
    """The edit as G alone renders it (no painted lids), pasted into the photo."""
    points = edits.apply_edits(person.source_landmarks, settings)
    precision, runtime = rendering_setup(model, precision, "torch")
    crop = next(iter(rendered_batches(model, person, points[None], 1, precision, runtime))).results[0]
    return paste_back(person.source_image, crop, person.source_box)


def _others(region: str) -> list[int]:
    return [i for name, idx in edits.REGIONS.items() if name != region for i in idx]


def _measure_edits(model, person, detector, precision: str) -> dict[str, float] | None:
    reference = _detect(detector, render_edit(model, person, edits.EditSettings(), precision=precision).image)
    if reference is None:
        return None
    row: dict[str, float] = {}
    for region, settings in REGION_EDITS.items():
        found = _detect(detector, render_edit(model, person, settings, precision=precision).image)
        if found is None:
            return None
        row[f"leak {region}"] = _moved(reference, found, _others(region))
        if region == "mouth":
            row["open"] = edits.inner_lip_gap(found)
        if region == "eyes":
            row["eyes"] = _eyes_gap(found)
            g_only = _detect(detector, _render_without_lids(model, person, settings, precision))
            row["eyes G"] = _eyes_gap(g_only) if g_only is not None else np.nan
    row["_reference"] = reference  # type: ignore[assignment]
    return row


def _motion_frames(model, person, driving, controls: MotionControls, stride: int, precision: str):
    """Per frame, pasted into the photo: ``{"G": G's render alone, "kept": the warp outside the parts the
    controls move (what ``animate_person`` returns, ``face/control_masks.py``), "exact": the photo's crop
    moved by the frame's head pose as an exact similarity (no spline, no G)}``, and the mean absolute
    difference (levels) of "kept" and of "G" from "exact" over the eyes and brows (their hulls)."""
    source, shot = person.source_landmarks, person.shots[0]
    targets = retarget_landmarks(source, driving.points)[::stride]
    poses = head_poses(source, targets) if controls.region != "lips" else [np.eye(2, 3)] * len(targets)
    targets = apply_motion_controls(source, targets, controls)
    regions = rendered_regions(controls)
    precision, runtime = rendering_setup(model, precision, "torch")
    for batch in rendered_batches(model, person, targets, 8, precision, runtime):
        for index, (result, warp, points) in enumerate(zip(batch.results, batch.warps, batch.points)):
            kept = controlled_result(result, warp, points, regions)
            pose = np.asarray(poses[batch.start + index], np.float64)
            exact = cv2.warpAffine(shot, pose, shot.shape[:2][::-1], borderMode=cv2.BORDER_REPLICATE)
            eyes = rendered_mask(points, ("eyes",), shot.shape[0]) >= 1.0
            change = {name: float(np.abs(crop.astype(np.float32) - exact)[eyes].mean()) for name, crop in
                      (("", kept), (" G", result))}
            crops = {"G": result, "kept": kept, "exact": exact}
            yield {name: paste_back(person.source_image, crop, person.source_box) for name, crop in crops.items()}, change


def _distance(name: str, reference: np.ndarray, found: np.ndarray) -> float:
    """Lips only: the eyes and brows moved; multiplier 0: the expression moved once the pose is aligned."""
    eyes_brows = edits.LEFT_EYE + edits.RIGHT_EYE + edits.BROWS
    if name == "lips":
        return _moved(reference, found, eyes_brows)
    stable = list(STABLE_POINTS)
    aligned = apply_affine(found, fit_similarity(found[stable], reference[stable]))
    return _moved(reference, aligned, eyes_brows + edits.MOUTH)


def _measure_motion(model, person, detector, references, driving, stride: int, precision: str) -> dict[str, float]:
    """Worst frame of lips only and multiplier 0 (kept, G alone, exact) against each of ``references``
    ({suffix: (68, 2) points}; "exact" only against the photo's)."""
    moved: dict[str, list[float]] = {}
    for name, controls in (("lips", MotionControls(region="lips")), ("mult0", MotionControls(multiplier=0.0))):
        for images, eye_change in _motion_frames(model, person, driving, controls, stride, precision):
            for suffix, change in eye_change.items():
                moved.setdefault(f"{name} eye px{suffix}", []).append(change)
            for variant, image in images.items():
                found = _detect(detector, image)
                for key, reference in references.items():
                    if found is None or (variant == "exact" and key != "photo"):
                        continue
                    suffix = key if variant == "kept" else f"{key} {variant}"
                    moved.setdefault(f"{name} {suffix}", []).append(_distance(name, reference, found))
    return {column: max(values) for column, values in moved.items()}


def _blink_floor(clips: Path, detector) -> None:
    """dlib's eyelid gap re-detected on real closed eyes: each prepared clip's deepest blink frame (< 0.025 stored)."""
    stored, found = [], []
    for path in sorted(clips.glob("*/*.npz")):
        with np.load(path) as clip:
            points = clip["landmarks"]
            gaps = np.array([_eyes_gap(p) for p in points])
            index = int(gaps.argmin())
            if gaps[index] >= 0.025:
                continue
            offsets = clip["jpeg_offsets"]
            jpeg = clip["jpeg_data"][offsets[index] : offsets[index + 1]]
            frame = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        again = _detect(detector, frame)
        if again is not None:
            stored.append(gaps[index])
            found.append(_eyes_gap(again))
    found_arr = np.array(found)
    print(f"real closed eyes: {len(found)} clips' deepest blink frames (stored gap median {np.median(stored):.3f});"
          f" re-detected on the {frame.shape[0]}-px crop: median {np.median(found_arr):.3f},"
          f" below 0.03 in {int((found_arr < 0.03).sum())}/{len(found)}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--motion", type=Path, default=ROOT / "examples" / "motions" / "expressions.npz")
    parser.add_argument("--max-photos", type=int, default=12, help="closed-mouth photos measured")
    parser.add_argument("--closed", type=float, default=0.05, help="inner-lip gap (iod) below which a mouth is closed")
    parser.add_argument("--stride", type=int, default=5, help="every n-th frame of the motion")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--blink-floor", type=Path, help="prepared clips (data/train_all/clips): dlib on real closed eyes")
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    info = machine_info()
    print(f"machine: {info['summary']}; precision {args.precision}; dlib landmarks")
    model = load_model(args.weights, device="cpu")
    detector = get_detector("dlib")
    driving = load_driving(args.motion, model.config.image_size)
    cache = PersonCache(1)
    rows = []
    for photo in sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
        if len(rows) >= args.max_photos:
            break
        try:
            person = cache.person(model, photo, detector, max_side=1024)
        except TalkingHeadError:
            continue
        if edits.inner_lip_gap(person.source_landmarks) >= args.closed:
            continue
        row = _measure_edits(model, person, detector, args.precision)
        if row is None:
            continue
        reference = row.pop("_reference")
        on_photo = _detect(detector, person.source_image)
        references = {"only": reference} | ({"photo": on_photo} if on_photo is not None else {})
        row.update(_measure_motion(model, person, detector, references, driving, args.stride, args.precision))
        rows.append(row)
        print(photo.name[:28].ljust(28), " ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    _summary(rows)
    if args.blink_floor:
        _blink_floor(args.blink_floor, detector)
    return 0


def _summary(rows: list[dict[str, float]]) -> None:
    wanted = {"open": (">=", 0.15), "eyes": ("<", 0.03), "eyes G": ("<", 0.03), "leak mouth": ("<", 0.02),
              "leak eyes": ("<", 0.02), "leak brows": ("<", 0.02), "lips only": ("<", 0.02), "mult0 only": ("<", 0.02),
              "lips photo": ("<", 0.02), "mult0 photo": ("<", 0.02)}
    motion = [key for key in wanted if key.startswith(("lips", "mult0"))]
    wanted |= {f"{key} G": wanted[key] for key in motion} | {f"{key} exact": wanted[key] for key in motion if "photo" in key}
    print(f"{len(rows)} closed-mouth photos")
    for key in ("lips eye px", "lips eye px G", "mult0 eye px", "mult0 eye px G"):
        values = np.array([r.get(key, np.nan) for r in rows])
        print(f"{key:17s} median {np.nanmedian(values):.2f}  worst {np.nanmax(values):.2f}  (levels, 0-255)")
    for key, (sign, bound) in wanted.items():
        values = np.array([r.get(key, np.nan) for r in rows])
        passed = (values >= bound) if sign == ">=" else (values < bound)
        print(f"{key:17s} median {np.nanmedian(values):.3f}  worst {np.nanmin(values) if sign == '>=' else np.nanmax(values):.3f}"
              f"  wanted {sign} {bound}  passed {int(passed.sum())}/{len(values)}")


if __name__ == "__main__":
    sys.exit(main())
