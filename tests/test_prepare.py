"""Dataset preparation on clips made in the test (a real face panned across frames)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _synthetic import make_photo_clip, write_clip

from talking_head.errors import TalkingHeadError
from talking_head.media.images import load_image
from talking_head.training.data import EpisodeDataset, load_prepared_clip, read_manifest
from talking_head.training.prepare import PrepareOptions, find_clips, prepare_dataset, sample_frame_indices

OPTIONS = PrepareOptions(image_size=64, max_frames=6, min_frames=3, backend="dlib")


@pytest.fixture(scope="module")
def videos(tmp_path_factory, astronaut_path):
    """<identity>/<clip>.mp4 and VoxCeleb2-style id/video/clip.mp4, plus a faceless clip and a broken file."""
    root = tmp_path_factory.mktemp("videos")
    photo = load_image(astronaut_path)
    make_photo_clip(root / "astronaut/pan.mp4", photo, num_frames=8, size=320)
    make_photo_clip(root / "id00001/videoA/00001.mp4", photo[:, ::-1], num_frames=8, size=320)
    write_clip(root / "blank/wall.mp4", [np.full((64, 64, 3), 128, np.uint8)] * 6)
    (root / "broken").mkdir()
    (root / "broken/not_a_video.mp4").write_text("this is text, not a video")
    return root


def test_find_clips_accepts_both_layouts(videos):
    clips = {t.relative: (t.identity, t.clip) for t in find_clips(videos)}
    assert clips["astronaut/pan.mp4"] == ("astronaut", "pan")
    assert clips["id00001/videoA/00001.mp4"] == ("id00001", "videoA/00001")
    assert len(clips) == 4


def test_find_clips_errors_say_what_to_do(tmp_path):
    with pytest.raises(TalkingHeadError, match="folder"):
        find_clips(tmp_path / "missing")
    with pytest.raises(TalkingHeadError, match="no videos"):
        find_clips(tmp_path)


def test_sample_frame_indices():
    np.testing.assert_array_equal(sample_frame_indices(5, 32), [0, 1, 2, 3, 4])
    picked = sample_frame_indices(100, 4)
    np.testing.assert_array_equal(picked, [0, 33, 66, 99])
    assert len(sample_frame_indices(0, 4)) == 0


def test_prepare_keeps_faces_skips_bad_clips_and_resumes(videos, tmp_path):
    out = tmp_path / "prepared"
    summary = prepare_dataset(videos, out, OPTIONS)
    assert (summary.total, summary.kept, summary.skipped, summary.already_done) == (4, 2, 2, 0)
    entries = {e["source"]: e for e in read_manifest(out)}
    kept = entries["astronaut/pan.mp4"]
    assert kept["skipped"] is None and kept["backend"] == "dlib"
    assert kept["frames_used"] >= 3 and kept["frames_total"] == 8 and kept["fps"] == pytest.approx(25)
    assert kept["frame_size"] == [320, 320] and 60 < kept["face_size"] < 320
    assert entries["id00001/videoA/00001.mp4"]["file"] == "clips/id00001/videoA/00001.npz"
    assert entries["blank/wall.mp4"]["skipped"].startswith("no face")
    assert entries["broken/not_a_video.mp4"]["skipped"].startswith("unreadable video")
    assert summary.reasons == {"no face": 1, "unreadable video": 1}
    assert "skipped (1): no face" in summary.describe()

    # Stored crops: 64 px, landmarks inside the crop, framed like a photo (face roughly centred).
    clip = load_prepared_clip(out / kept["file"])
    assert len(clip) == kept["frames_used"] and clip.image(0).shape == (64, 64, 3)
    assert (clip.landmarks > 0).all() and (clip.landmarks < 64).all()
    centre = clip.landmarks[:, 27:36].mean(axis=(0, 1))  # the nose
    assert np.all(np.abs(centre - 32) < 10)
    assert np.all(np.diff(clip.frame_indices) > 0)

    # Resume: nothing is redone, the manifest is unchanged, the dataset reads both clips.
    before = (out / "manifest.jsonl").read_text()
    again = prepare_dataset(videos, out, OPTIONS)
    assert (again.already_done, again.kept, again.skipped) == (4, 0, 0)
    assert (out / "manifest.jsonl").read_text() == before
    assert (again.kept_total, again.skipped_total) == (2, 2)
    assert len(EpisodeDataset(out, k_shots=2, image_size=64)) == 2


def test_prepare_resumes_after_an_interruption(videos, tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    # An earlier run finished the astronaut clip, then died while writing the next line.
    done = {
        "identity": "astronaut",
        "clip": "pan",
        "source": "astronaut/pan.mp4",
        "file": None,
        "skipped": "no face: test",
    }
    (out / "manifest.jsonl").write_text(json.dumps(done) + "\n" + '{"identity": "id0', encoding="utf-8")
    summary = prepare_dataset(videos, out, OPTIONS)
    assert summary.already_done == 1 and summary.kept == 1 and summary.skipped == 2
    # retry_skipped redoes skipped clips; the newest manifest line wins.
    retried = prepare_dataset(videos, out, OPTIONS, retry_skipped=True)
    assert retried.kept == 1 and retried.kept_total == 2
