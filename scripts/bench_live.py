"""Live mode, measured: a clip played at its own frame rate into a live session (issue 25).

The clip is a camera: :func:`talking_head.live.replay.replay` delivers its
frames on the clip's schedule whether or not the renderer is ready, the
renderer takes the newest, and each frame is JPEG-decoded and the result
JPEG-encoded as on the page. Printed: the machine, the runtime and
precision, and per run the rendered frames per second, the frames dropped
and the latency (camera frame in → rendered frame out) percentiles; then the
medians over the runs.

Without ``--clip`` the camera shows ``--photo`` (the astronaut) driven by
``--motion`` (an example motion), rendered by the weights into the whole
photo beforehand, so no recording of anyone is needed::

    python scripts/bench_live.py                        # 3 runs of 10 s at 25 fps
    python scripts/bench_live.py --clip my_webcam.mp4   # any clip with a face
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.animation.compositing import NativeCompositor
from talking_head.animation.pipeline import embed_person, load_model
from talking_head.evaluation.machine import machine_info
from talking_head.face.landmarks import get_detector
from talking_head.face.tracking import LandmarkTrack
from talking_head.live.camera_clip import face_clip
from talking_head.live.render import FrameRenderer
from talking_head.live.replay import replay
from talking_head.live.session import LiveSession
from talking_head.media.images import load_image
from talking_head.media.video_reader import VideoReader
from talking_head.web.live import LIVE_PHOTO_LIMIT


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--photo", default=str(ROOT / "examples" / "astronaut.png"), help="the person driven")
    parser.add_argument(
        "--clip", help="the camera: a video with a face (default: made from --photo and --motion)"
    )
    parser.add_argument("--motion", default=str(ROOT / "examples" / "motions" / "expressions.npz"))
    parser.add_argument(
        "--fps", type=float, help="camera frame rate (default: the clip's; 25 for the made clip)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of a run; the clip loops (default 10)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", default="auto", choices=("auto", "onnx", "torch"))
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument(
        "--output",
        default="crop",
        choices=("crop", "photo"),
        help="crop: G's 256² face (default); photo: the whole photo, longer side at most 640",
    )
    parser.add_argument("--json", help="also write the numbers here")
    return parser.parse_args()


def _camera(args: argparse.Namespace, model, person) -> tuple[list[np.ndarray], float]:
    if args.clip:
        with VideoReader(args.clip) as reader:
            return list(reader), args.fps or reader.info.fps
    motion = LandmarkTrack.load(args.motion)
    frames = face_clip(model, person, motion, runtime=args.runtime)
    return frames, args.fps or motion.fps


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = _arguments()
    model = load_model(args.weights)
    detector = get_detector("dlib")
    person = embed_person(model, [load_image(args.photo)], detector)
    frames, fps = _camera(args, model, person)
    count = max(1, round(args.seconds * fps))
    frames = [frames[i % len(frames)] for i in range(count)]
    renderer = FrameRenderer(model, person, precision=args.precision, runtime=args.runtime)
    renderer(person.source_landmarks)  # the first call's set-up is not part of a run
    compositor = (
        NativeCompositor.for_person(person, "photo", LIVE_PHOTO_LIMIT) if args.output == "photo" else None
    )
    shown = "256²" if compositor is None else "the whole photo at {1}x{0}".format(*compositor.still.shape[:2])
    machine = machine_info()
    print(f"machine: {machine['summary']}")
    print(
        f"renderer: {renderer.runtime.describe(renderer.precision)}; camera: {len(frames)} frames of "
        f"{frames[0].shape[1]}x{frames[0].shape[0]} at {fps:g} fps; output {shown}"
    )
    reports = []
    for run in range(args.runs):
        session = LiveSession(renderer, person, detector, limit_s=1e9, compositor=compositor)
        report = replay(session.step, frames, fps)
        reports.append(report)
        print(f"run {run + 1}: {report.describe()}")
    medians = {
        "fps": float(np.median([r.fps for r in reports])),
        "dropped": float(np.median([r.dropped for r in reports])),
        "latency_p50_ms": float(np.median([r.latency_ms(50) for r in reports])),
        "latency_p90_ms": float(np.median([r.latency_ms(90) for r in reports])),
        "latency_p99_ms": float(np.median([r.latency_ms(99) for r in reports])),
    }
    print("median over runs: " + ", ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    if args.json:
        record = {
            "machine": machine,
            "renderer": renderer.runtime.describe(renderer.precision),
            "fps_in": fps,
            "frames": len(frames),
            "medians": medians,
        }
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
