"""Make the example driving motions shipped in ``examples/motions/``.

Each example is a *landmark track* the project extracted itself, never video
pixels: the source clips are research-only and must not be shipped
(``docs/DATA.md``), but the numbers derived from them (68 points per frame) may be.

For every entry of :data:`MOTIONS` this script

1. tracks the 68 landmarks through ``seconds`` of the clip (dlib backend:
   offline and deterministic), starting at ``start`` seconds;
2. saves the track as ``examples/motions/<name>.npz`` (``LandmarkTrack.save``:
   points, boxes, found flags, **fps**, backend, frame size; no pickles);
3. renders a preview ``examples/motions/<name>.mp4`` made only from
   ``rasterize_landmarks`` of the framed landmarks (a sketch on black, no
   video pixels; ``web.previews.write_motion_preview``), tagged synthetic in its
   metadata.

Run from the repository root, with ``DATA`` the folder that holds the
research clips (``val/<identity>/<clip>.mp4``)::

    python scripts/make_examples.py --data DATA

The result is deterministic for a given clip and dlib version. Each .npz is
about 20-30 kB and each preview about 200 kB.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from talking_head.face.landmarks import get_detector
from talking_head.face.tracking import LandmarkTrack, track_landmarks
from talking_head.media.video_reader import VideoReader
from talking_head.web.previews import write_motion_preview


@dataclass(frozen=True)
class MotionSpec:
    """One example motion: which clip, which part of it."""

    name: str  # file stem in examples/motions/
    clip: str  # path relative to the data folder
    start: float  # first second used
    seconds: float  # length used
    description: str  # shown in the app's example list


MOTIONS = (
    MotionSpec(
        "calm-talking",
        "val/lia_vox2_man/lia_vox_driving2.mp4",
        0.0,
        5.0,
        "speech, small mouth and head motion",
    ),
    MotionSpec(
        "head-tilts", "val/theresa_may/aniport_pose_ref_video.mp4", 0.0, 5.0, "speech with head tilts"
    ),
    MotionSpec("expressions", "val/lp_d12/lp_d12.mp4", 0.0, 5.0, "wide mouth movements and head turns"),
)


def extract_track(clip: Path, start: float, seconds: float) -> LandmarkTrack:
    """Landmarks of ``seconds`` of ``clip`` from ``start`` (tracked from the clip's first frame, then cut)."""
    detector = get_detector("dlib")
    with VideoReader(clip, max_seconds=start + seconds) as reader:
        track = track_landmarks(reader, detector, fps=reader.info.fps)
    first = round(start * track.fps)
    last = first + round(seconds * track.fps)
    return LandmarkTrack(
        points=track.points[first:last],
        boxes=track.boxes[first:last],
        found=track.found[first:last],
        fps=track.fps,
        backend=track.backend,
        frame_size=track.frame_size,
        long_gaps=[(a - first, b - first) for a, b in track.long_gaps if a >= first and b < last],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the clips' val/ (docs/DATA.md)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "examples" / "motions", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in MOTIONS:
        clip = args.data / spec.clip
        if not clip.is_file():
            print(f"missing {clip}: pass --data pointing at the folder with val/ and train/", file=sys.stderr)
            return 1
        track = extract_track(clip, spec.start, spec.seconds)
        track.save(args.out / f"{spec.name}.npz")
        write_motion_preview(track, args.out / f"{spec.name}.mp4")
        print(
            f"{spec.name}: {len(track)} frames at {track.fps:g} fps, face found in {100 * track.face_fraction:.0f}% "
            f"of frames, from {spec.clip} ({spec.description})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
