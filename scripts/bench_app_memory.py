"""Peak memory and frame counts of app requests, through ``app.animate`` (the ``/animate`` handler).

One process plays the server: it builds the page with random weights of a
preset (``tiny`` by default), then sends, in order,

1. a normal request (the example photo, the calm-talking motion, 5 s);
2. a 12000×12000 PNG as the photo (refused from its header: too many pixels);
3. a 240 fps clip with 2 s asked for, and a 100 fps track with 5 s asked for
   (frames rendered, against the frame cap ``AppLimits.max_frames``);
4. bad inputs a user can send (text named .jpg, a 20000×20000 PNG header, a cut
   MP4, a text .npz, a pickled .npz, fps 0, NaN points, 2.5 steps): each message
   is printed and checked for a temp path, "allow_pickle" or "Something went wrong";
5. with ``--allowed``, the largest photo within the limit (40 MP), last, because it
   raises the peak on purpose.

Peak memory is the process's peak resident set size (``ru_maxrss``) after each
request, so each number includes everything before it: the ratio after (2) to
after (1) is what a bomb-sized photo adds to a server's peak. Prints the machine.

    python scripts/bench_app_memory.py [--preset tiny|cpu] [--allowed] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

# Run from a checkout without installing the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402
import torch  # noqa: E402

import app  # noqa: E402
from talking_head.face.landmarks import get_detector  # noqa: E402
from talking_head.face.tracking import LandmarkTrack  # noqa: E402
from talking_head.media.images import load_image  # noqa: E402
from talking_head.media.video import probe_video  # noqa: E402
from talking_head.media.video_writer import VideoWriter  # noqa: E402
from talking_head.nets.config import ModelConfig  # noqa: E402
from talking_head.nets.model import TalkingHeadModel  # noqa: E402
from talking_head.web.limits import AppLimits  # noqa: E402
from talking_head.web.state import AppState, load_app_weights  # noqa: E402

PHOTO = ROOT / "examples" / "astronaut.png"
MOTION = ROOT / "examples" / "motions" / "calm-talking.npz"
FORBIDDEN = ("/tmp/", tempfile.gettempdir(), "allow_pickle", "Something went wrong", "Traceback")


def peak_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: Path, width: int, height: int, pixel_data: bool = True) -> Path:
    """A valid gray-gradient RGB PNG written row by row (little memory), or its header only."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b""
    if pixel_data:
        compressor = zlib.compressobj(6)
        parts = []
        for y in range(height):
            row = bytes([y * 255 // max(1, height - 1)]) * (3 * width)
            parts.append(compressor.compress(b"\x00" + row))
        body = _chunk(b"IDAT", b"".join(parts) + compressor.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + body + _chunk(b"IEND", b""))
    return path


def fast_clip(path: Path, fps: int = 240, seconds: float = 3.0) -> Path:
    """The example face, moving slowly, at a high frame rate."""
    face = np.ascontiguousarray(load_image(PHOTO)[20:276, 100:356])
    with VideoWriter(path, fps) as writer:
        for index in range(round(fps * seconds)):
            writer.write(np.roll(face, index // 20, axis=0))
    return path


def fast_track(path: Path, fps: float = 100.0, frames: int = 1000) -> Path:
    """The calm-talking motion repeated to ``frames`` frames and labelled ``fps``."""
    calm = LandmarkTrack.load(MOTION)
    repeat = -(-frames // len(calm))
    tile = lambda a: np.concatenate([a] * repeat)[:frames]  # noqa: E731
    LandmarkTrack(tile(calm.points), tile(calm.boxes), tile(calm.found), fps, calm.backend, calm.frame_size).save(path)
    return path


def animate(photo: Path, motion: Path | None = None, clip: Path | None = None, **settings) -> dict:
    """One request through the page's handler: frames rendered or the user's message, and the peak after it."""
    start = time.perf_counter()
    try:
        video, _overlay, status = app.animate([str(photo)], str(clip) if clip else None, str(motion) if motion else None, **settings)
        result = {"frames": probe_video(video).num_frames, "status": status.splitlines()[0]}
    except gr.Error as error:
        result = {"message": error.message}
    result.update(seconds=round(time.perf_counter() - start, 1), peak_mb=round(peak_mb(), 1))
    return result


def bad_inputs(folder: Path) -> dict[str, tuple[Path, dict]]:
    """What a new user may send: (photo or driving file, settings) per case."""
    text_photo = folder / "photo.jpg"
    text_photo.write_text("I am a text file")
    bomb = write_png(folder / "big.png", 20000, 20000, pixel_data=False)
    whole = fast_clip(folder / "whole.mp4", fps=10, seconds=1.0)
    cut = folder / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    text_npz = folder / "motion.npz"
    text_npz.write_text("not numbers")
    pickled = folder / "pickled.npz"
    np.savez(pickled, points=np.array([{"x": 1}], dtype=object), fps=np.float64(25))
    calm = LandmarkTrack.load(MOTION)
    zero_fps, nan_points = folder / "zero-fps.npz", folder / "nan.npz"
    LandmarkTrack(calm.points, calm.boxes, calm.found, 0.0, calm.backend, calm.frame_size).save(zero_fps)
    bad = calm.points.copy()
    bad[3] = np.nan
    LandmarkTrack(bad, calm.boxes, calm.found, calm.fps, calm.backend, calm.frame_size).save(nan_points)
    return {
        "text named photo.jpg": (text_photo, {"motion": MOTION}),
        "20000×20000 PNG": (bomb, {"motion": MOTION}),
        "cut MP4": (PHOTO, {"clip": cut}),
        "text named .npz": (PHOTO, {"motion": text_npz}),
        "pickled .npz": (PHOTO, {"motion": pickled}),
        "track with fps 0": (PHOTO, {"motion": zero_fps}),
        "track with NaN points": (PHOTO, {"motion": nan_points}),
        "2.5 steps": (PHOTO, {"motion": MOTION, "steps": 2.5}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="model preset of the random weights (default tiny)")
    parser.add_argument("--allowed", action="store_true", help="also send the largest photo within the pixel limit")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"python {platform.python_version()}")

    report: dict = {"preset": args.preset}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        torch.manual_seed(0)
        weights = TalkingHeadModel(ModelConfig.preset(args.preset)).save_pretrained(folder / "weights")
        limits = AppLimits.from_env()
        state = AppState(load_app_weights(str(weights), device="cpu"), limits, get_detector("dlib"))
        app.build_demo(state)
        report["limits"] = {"max_frames": limits.max_frames, "max_fps": limits.max_fps,
                            "max_image_megapixels": limits.max_image_megapixels}
        report["after start"] = {"peak_mb": round(peak_mb(), 1)}

        report["normal request"] = animate(PHOTO, MOTION, max_seconds=5)
        big = write_png(folder / "huge.png", 12000, 12000)
        report["12000×12000 PNG"] = dict(animate(big, MOTION, max_seconds=5), file_mb=round(big.stat().st_size / 1e6, 2))
        report["peak ratio (12000² PNG / normal)"] = round(
            report["12000×12000 PNG"]["peak_mb"] / report["normal request"]["peak_mb"], 3
        )
        report["240 fps clip, 2 s"] = animate(PHOTO, clip=fast_clip(folder / "fast.mp4"), max_seconds=2)
        report["100 fps track, 5 s"] = animate(PHOTO, fast_track(folder / "fast.npz"), max_seconds=5)
        report["100 fps track, 10 s"] = animate(PHOTO, fast_track(folder / "fast.npz"), max_seconds=10)

        clean = True
        report["bad inputs"] = {}
        for name, (photo, settings) in bad_inputs(folder).items():
            result = animate(photo, **settings)
            message = result.get("message", "(no error!)")
            leaks = [word for word in FORBIDDEN if word in message]
            clean &= not leaks and "message" in result
            report["bad inputs"][name] = {"message": message, "leaks": leaks}
        report["bad inputs clean"] = clean

        if args.allowed:
            side = int((limits.max_image_pixels * 0.75) ** 0.5)
            allowed = write_png(folder / "allowed.png", round(side / 0.75) - 1, side)
            report["largest allowed PNG"] = dict(animate(allowed, MOTION, max_seconds=5), size=f"{round(side / 0.75) - 1}×{side}")

    for key, value in report.items():
        if key == "bad inputs":
            for name, item in value.items():
                print(f"  {name}: {item['message']}" + (f"  LEAKS {item['leaks']}" if item["leaks"] else ""))
        else:
            print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
