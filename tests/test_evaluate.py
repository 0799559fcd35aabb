"""Evaluation protocol: frame selection, scoring, and a run on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from talking_head.evaluation import evaluate, scoring
from talking_head.evaluation.evaluate import EvalConfig, select_frames
from talking_head.evaluation.report import write_report


def test_select_frames_disjoint_and_even() -> None:
    shots, holdout = select_frames(200, shots=(1, 8), holdout=32, shot_fraction=0.25)
    assert shots[1] == [0]
    assert len(shots[8]) == 8 and max(shots[8]) < 50
    assert len(holdout) == 32 and min(holdout) >= 50 and max(holdout) == 199
    assert not set(holdout) & set(shots[8])
    gaps = np.diff(holdout)
    assert gaps.max() - gaps.min() <= 1  # evenly spread


def test_select_frames_short_clip() -> None:
    shots, holdout = select_frames(12, shots=(8,), holdout=32)
    assert shots[8] == list(range(8))
    assert holdout == [8, 9, 10, 11]
    with pytest.raises(ValueError, match="too short"):
        select_frames(8, shots=(8,), holdout=4)


def test_eval_config_validation() -> None:
    with pytest.raises(ValueError):
        EvalConfig(shots=(0,))
    with pytest.raises(ValueError):
        EvalConfig(steps=(-1,))
    assert evaluate.method_names(EvalConfig(steps=(0, 40))) == ["copy", "warp", "FF", "FT40"]
    assert evaluate.method_names(EvalConfig(steps=(0,), baseline_warp=False)) == ["copy", "FF"]


def test_find_clips(tmp_path: Path) -> None:
    (tmp_path / "a" / "v1").mkdir(parents=True)
    (tmp_path / "a" / "v1" / "00001.mp4").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "clip.MP4").write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("x")
    found = evaluate.find_clips(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/v1/00001.mp4", "b/clip.MP4"]
    assert len(evaluate.find_clips(tmp_path, max_clips=1)) == 1
    from talking_head.errors import VideoReadError

    with pytest.raises(VideoReadError):
        evaluate.find_clips(tmp_path / "missing")


def test_score_frames_real_faces(astronaut_path: Path) -> None:
    """Real crops scored against themselves: perfect image metrics, ~0 landmark error, CSIM ≈ 1."""
    from talking_head.evaluation.metrics import get_face_identity
    from talking_head.evaluation.synthetic import synthetic_talking_frames
    from talking_head.face.framing import crop_box_from_landmarks, crop_image
    from talking_head.face.landmarks import get_detector

    detector, identity = get_detector("dlib"), get_face_identity()
    crops, points = [], []
    for frame in synthetic_talking_frames(2, 512):
        face = detector.detect(frame)
        box = crop_box_from_landmarks(face.points)
        crops.append(crop_image(frame, box, 256))
        points.append(detector.detect(crops[-1]).points)
    real_desc = [scoring.read_face(c, detector, identity).descriptor for c in crops]
    scores = scoring.score_frames(crops, points, detector, identity, crops, real_desc)
    assert scores["ssim"] == pytest.approx(1.0)
    assert scores["l1"] == 0.0
    assert scores["face_detected"] == 1.0
    assert scores["landmark_error"] == pytest.approx(0.0, abs=1e-6)
    assert scores["csim"] == pytest.approx(1.0, abs=1e-5)
    # A blank prediction: no face, so landmark error and CSIM have nothing to average.
    blank = [np.zeros_like(crops[0])] * 2
    scores = scoring.score_frames(blank, points, detector, identity, crops, real_desc)
    assert scores["face_detected"] == 0.0 and scores["landmark_error"] is None and scores["csim"] is None
    assert scores["ssim"] < 0.5


class _NoFaceDetector:
    """Finds no face anywhere: landmark error and CSIM are left out, the image metrics remain."""

    name = "none"

    def detect(self, image: np.ndarray) -> None:
        from talking_head.errors import NoFaceError

        raise NoFaceError("no face in this test")


class _NoEmbedRunner:
    """A model runner whose embedding always fails: only the baselines are scored."""

    def embed(self, frames: list) -> None:
        from talking_head.errors import NoFaceError

        raise NoFaceError("no model in this test")


def test_warp_baseline_beats_copy_when_the_target_is_the_shot_moved() -> None:
    """Hold-out frames are the shot's face moved (and its mouth opened): the warp follows, copy cannot."""
    from _synthetic import draw_face, template_landmarks

    size, skin, background = 128, (200, 160, 140), (40, 60, 90)
    shot_points = template_landmarks(size) * 0.8 + 0.1 * size  # room to move inside the crop
    frames = {0: (shot_points, 0.0)}
    for index, (dx, dy, mouth) in enumerate([(6, 0, 0.0), (-5, 4, 0.5), (3, -6, 1.0)], start=1):
        opened = template_landmarks(size, mouth_open=mouth) * 0.8 + 0.1 * size
        frames[index] = (opened + np.array([dx, dy], np.float32), mouth)
    crops = {i: draw_face(p, size, skin, background) for i, (p, _) in frames.items()}
    clip = evaluate.FramedClip(
        name="moved",
        num_frames=len(frames),
        fps=25.0,
        crops=crops,
        points={i: p for i, (p, _) in frames.items()},
        frames={0: crops[0]},
        shots={1: [0]},
        holdout=[1, 2, 3],
    )
    ctx = evaluate._Context(EvalConfig(shots=(1,), steps=(0,)), _NoEmbedRunner(), _NoFaceDetector(), None)
    per_t = evaluate._self_reenactment(clip, ctx, [None] * 3, {})["T=1"]
    assert list(per_t) == ["real", "copy", "warp", "skipped"]
    copy, warp = per_t["copy"], per_t["warp"]
    assert warp["ssim"] > copy["ssim"] + 0.05 and warp["l1"] < 0.5 * copy["l1"]
    assert warp["mouth_ssim"] > copy["mouth_ssim"] + 0.05 and warp["mouth_l1"] < copy["mouth_l1"]
    assert warp["face_detected"] == 0.0 and warp["landmark_error"] is None
    assert per_t["real"]["sharpness"] > 0.0 and warp["sharpness"] > 0.0


def test_warp_person_crops_batches_and_keeps_the_shot_at_its_own_landmarks() -> None:
    from _synthetic import draw_face, template_landmarks

    from talking_head.nets.warp import warp_person_crops

    points = template_landmarks(64) * 0.8 + 6.4
    shot = draw_face(points, 64, (200, 160, 140), (40, 60, 90))
    targets = np.stack([points, points + 2.0, points - 1.0])
    out = warp_person_crops(shot[None], points[None], targets, batch_size=2)
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    # Warped to its own landmarks the shot comes back (up to bilinear resampling).
    assert np.abs(out[0].astype(int) - shot.astype(int)).mean() < 1.0
    assert np.abs(out[1].astype(int) - shot.astype(int)).mean() > 1.0
    with pytest.raises(ValueError, match="landmark sets"):
        warp_person_crops(shot[None], np.stack([points, points]), targets)


@pytest.fixture(scope="module")
def synthetic_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short clips of the example photo with small head motions."""
    from talking_head.evaluation.synthetic import synthetic_talking_frames
    from talking_head.media.video_writer import VideoWriter

    root = tmp_path_factory.mktemp("videos")
    for index, name in enumerate(("alice/clip1.mp4", "bob/clip2.mp4")):
        path = root / name
        path.parent.mkdir(parents=True)
        with VideoWriter(path, fps=10) as writer:
            for frame in synthetic_talking_frames(12, 384, seed=index):
                writer.write(frame)
    return root


def test_evaluate_tiny_synthetic_set(synthetic_videos: Path, tmp_path: Path) -> None:
    from _tiny_weights import make_tiny_weights

    from talking_head.nets.model import TalkingHeadModel

    model = TalkingHeadModel.from_pretrained(make_tiny_weights(tmp_path / "weights"))
    config = EvalConfig(shots=(1,), steps=(0, 1), holdout=4, landmarks_backend="dlib")
    report = evaluate.evaluate(model, synthetic_videos, config)
    assert report["clips_evaluated"] == 2 and report["clips_skipped"] == 0
    clip = report["clips"][0]
    assert clip["clip"] == "alice/clip1.mp4"
    assert len(clip["holdout_frames"]) == 4 and clip["shot_frames"]["1"] == [0]
    assert not set(clip["holdout_frames"]) & set(clip["shot_frames"]["1"])
    assert clip["cross"]["driver"] == "bob/clip2.mp4"
    overall = report["overall"]["self"]["T=1"]
    assert list(overall) == ["real", "copy", "warp", "FF", "FT1"]
    assert set(overall["real"]) == {"sharpness", "clips"} and overall["real"]["sharpness"] > 0
    for method, scores in overall.items():
        if method == "real":
            continue
        assert 0.0 <= scores["mouth_l1"] <= 1.0 and -1.0 <= scores["mouth_ssim"] <= 1.0, method
        assert scores["sharpness"] >= 0.0, method
        assert -1.0 <= scores["ssim"] <= 1.0, method
        assert 0.0 < scores["psnr"] <= 100.0, method
        assert 0.0 <= scores["l1"] <= 1.0, method
        assert 0.0 <= scores["face_detected"] <= 1.0, method
        assert scores["clips"] == 2
        for key in ("landmark_error", "csim"):
            assert scores[key] is None or np.isfinite(scores[key])
    assert overall["FT1"]["seconds"] > 0.0
    assert set(report["overall"]["cross"]["T=1"]) == {"real", "copy", "warp", "FF", "FT1"}
    assert "sharpness" in report["overall"]["cross"]["T=1"]["warp"]
    # The report round-trips through JSON and renders a Markdown table.
    report["machine"] = {"summary": "test machine"}
    json_path, md_path = write_report(report, tmp_path / "report.json")
    assert json.loads(json_path.read_text())["clips_evaluated"] == 2
    table = md_path.read_text()
    assert "| 1 | FT1 |" in table and "Cross-reenactment" in table and "test machine" in table
    assert "| 1 | warp |" in table and "| 1 | real |" in table
    assert "mouth SSIM ↑" in table and "mouth L1 ↓" in table and "sharpness" in table
    assert "SSIM rewards blur" in table


def test_evaluate_cli(synthetic_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from talking_head.__main__ import main

    out = tmp_path / "r" / "report.json"
    code = main(
        [
            "evaluate",
            "--videos",
            str(synthetic_videos),
            "--random-weights",
            "tiny",
            "--shots",
            "1",
            "--steps",
            "0",
            "--holdout",
            "2",
            "--max-clips",
            "1",
            "--no-cross",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["weights"].startswith("random tiny")
    assert list(report["overall"]["self"]["T=1"]) == ["real", "copy", "warp", "FF"]
    assert report["overall"]["cross"] == {}
    assert out.with_suffix(".md").exists() and "| 1 | FF |" in capsys.readouterr().out


def test_evaluate_cli_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from talking_head.__main__ import main

    code = main(
        [
            "evaluate",
            "--videos",
            str(tmp_path / "none"),
            "--random-weights",
            "tiny",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "not a folder" in capsys.readouterr().err
