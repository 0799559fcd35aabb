"""``python -m talking_head landmarks`` on a photo, a short clip with audio, and wrong inputs.

All inputs are made here from ``examples/astronaut.png`` (dlib backend, offline).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from talking_head.__main__ import main
from talking_head.animation.overlay import compose_overlay, media_kind
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.images import load_image
from talking_head.media.video import ffmpeg_exe, probe_video
from talking_head.media.video_writer import VideoWriter

CLIP_FRAMES = 10
CLIP_FPS = 12.5  # not an integer: the overlay must keep it exactly


def _face_crop(astronaut_path: Path) -> np.ndarray:
    """A 256² crop around the astronaut's face (face ~90 px wide), RGB uint8."""
    return np.ascontiguousarray(load_image(astronaut_path)[20:276, 100:356])


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path) -> Path:
    """A 10-frame 256² clip of the face moving slightly, with a 440 Hz audio track."""
    folder = tmp_path_factory.mktemp("clip")
    audio = folder / "tone.wav"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(audio)],
        check=True,
    )
    face = _face_crop(astronaut_path)
    clip = folder / "talking.mp4"
    with VideoWriter(clip, CLIP_FPS, audio_from=audio) as writer:
        for t in range(CLIP_FRAMES):
            matrix = cv2.getRotationMatrix2D((128, 128), 2.0 * np.sin(t), 1.0)
            matrix[:, 2] += (3.0 * np.sin(0.7 * t), 2.0 * np.cos(0.5 * t))
            writer.write(cv2.warpAffine(face, matrix, (256, 256), borderMode=cv2.BORDER_REFLECT))
    return clip


def test_photo_overlay_and_track(tmp_path: Path, astronaut_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, npz = tmp_path / "overlay.png", tmp_path / "tracks.npz"
    code = main(["landmarks", str(astronaut_path), "--out", str(out), "--save", str(npz), "--backend", "dlib"])
    assert code == 0
    photo = load_image(astronaut_path)
    overlay = load_image(out)
    assert overlay.shape == (photo.shape[0], 2 * photo.shape[1], 3)
    # The right half is the rasterized landmark image: black canvas with a coloured face.
    raster = overlay[:, photo.shape[1]:]
    assert 0.001 < (raster.max(axis=2) > 40).mean() < 0.2
    track = LandmarkTrack.load(npz)
    assert track.points.shape == (1, 68, 2) and track.boxes.shape == (1, 4)
    assert track.backend == "dlib" and track.found.all()
    # Landmarks lie inside the photo, on the face (upper part of the astronaut portrait).
    assert (track.points[0] >= 0).all() and (track.points[0, :, 1] < photo.shape[0] / 2).all()
    summary = capsys.readouterr().out
    assert "1 frame" in summary and "100.0%" in summary and "dlib" in summary


def test_clip_overlay_keeps_frames_fps_and_audio(tmp_path: Path, talking_clip: Path, capsys) -> None:
    out, npz = tmp_path / "overlay.mp4", tmp_path / "tracks.npz"
    code = main(["landmarks", str(talking_clip), "--out", str(out), "--save", str(npz), "--backend", "dlib"])
    assert code == 0
    source, overlay = probe_video(talking_clip), probe_video(out)
    assert overlay.num_frames == source.num_frames == CLIP_FRAMES
    assert overlay.fps == pytest.approx(source.fps, abs=1e-3)
    assert overlay.size == (2 * source.size[0], source.size[1])
    assert overlay.has_audio
    track = LandmarkTrack.load(npz)
    assert track.points.shape == (CLIP_FRAMES, 68, 2)
    assert track.fps == pytest.approx(CLIP_FPS)
    assert track.found.mean() >= 0.9
    assert f"{CLIP_FRAMES} frames" in capsys.readouterr().out


def test_max_seconds_limits_the_clip(tmp_path: Path, talking_clip: Path) -> None:
    npz = tmp_path / "tracks.npz"
    out = tmp_path / "overlay.mp4"
    args = ["landmarks", str(talking_clip), "--save", str(npz), "--out", str(out), "--max-seconds", "0.4"]
    assert main(args + ["--backend", "dlib"]) == 0
    assert len(LandmarkTrack.load(npz)) == 5  # 0.4 s at 12.5 fps
    assert probe_video(out).num_frames == 5


def test_text_file_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a face\n")
    code = main(["landmarks", str(text), "--out", str(tmp_path / "o.png"), "--backend", "dlib"])
    assert code == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "neither a photo nor a video" in err
    assert not (tmp_path / "o.png").exists()


def test_text_file_named_like_a_photo_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not a face\n")
    assert main(["landmarks", str(fake), "--backend", "dlib"]) == 2
    assert "fake.png" in capsys.readouterr().err


@pytest.mark.parametrize(("source", "out_name"), [("photo", "o.mp4"), ("clip", "o.png")])
def test_wrong_overlay_suffix_is_rejected(tmp_path, astronaut_path, talking_clip, capsys, source, out_name) -> None:
    path = astronaut_path if source == "photo" else talking_clip
    assert main(["landmarks", str(path), "--out", str(tmp_path / out_name), "--backend", "dlib"]) == 2
    err = capsys.readouterr().err
    assert f"input is a {source}" in err and out_name in err


def test_photo_without_face_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    assert main(["landmarks", str(blank), "--backend", "dlib"]) == 2
    assert "No face" in capsys.readouterr().err


def test_media_kind_sniffs_content(tmp_path: Path, astronaut_path: Path, talking_clip: Path) -> None:
    renamed = tmp_path / "clip.bin"
    renamed.write_bytes(talking_clip.read_bytes())
    assert media_kind(renamed) == "clip"
    assert media_kind(astronaut_path) == "photo"


def test_compose_overlay_without_points_has_black_raster() -> None:
    frame = np.full((40, 60, 3), 200, np.uint8)
    overlay = compose_overlay(frame, None)
    assert overlay.shape == (40, 120, 3)
    assert overlay[:, 60:].max() == 0


def test_save_into_missing_folder_exits_2(tmp_path: Path, astronaut_path: Path, capsys) -> None:
    target = tmp_path / "missing" / "tracks.npz"
    assert main(["landmarks", str(astronaut_path), "--save", str(target), "--backend", "dlib"]) == 2
    assert "does not exist" in capsys.readouterr().err
