"""The interim landmark page: the Blocks build, and the handler called directly (no server)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest

import app
from talking_head.media.images import load_image
from talking_head.media.video import probe_video
from talking_head.media.video_writer import VideoWriter


def test_build_demo_wires_the_handler() -> None:
    demo = app.build_demo()
    assert isinstance(demo, gr.Blocks)
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert {"Photo or clip", "Overlay (photo)", "Overlay (clip)", "Status"} <= labels
    assert any(getattr(dep, "api_name", None) == "landmarks" for dep in demo.fns.values())


def test_handler_returns_the_photo_overlay(astronaut_path: Path) -> None:
    image, video, status = app.run_landmarks(str(astronaut_path), backend="dlib")
    photo = load_image(astronaut_path)
    assert video is None
    assert isinstance(image, np.ndarray) and image.shape == (photo.shape[0], 2 * photo.shape[1], 3)
    assert "astronaut.png" in status and "100.0%" in status and "dlib" in status


def test_handler_writes_the_clip_overlay(tmp_path: Path, astronaut_path: Path) -> None:
    face = np.ascontiguousarray(load_image(astronaut_path)[20:276, 100:356])
    clip = tmp_path / "still.mp4"
    with VideoWriter(clip, 10) as writer:
        for shift in range(4):
            writer.write(np.roll(face, shift, axis=1))
    image, video, status = app.run_landmarks(str(clip), backend="dlib", max_seconds=10)
    assert image is None and video is not None
    info = probe_video(video)
    assert info.num_frames == 4 and info.size == (512, 256)
    assert "4 frames" in status


def test_text_file_raises_gr_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(gr.Error, match="neither a photo nor a video"):
        app.run_landmarks(str(text), backend="dlib")


def test_missing_upload_raises_gr_error() -> None:
    with pytest.raises(gr.Error, match="Upload a photo or a clip"):
        app.run_landmarks(None)
