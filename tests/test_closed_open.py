"""The closed-to-open part of evaluate: the most closed frame as the shot, the most open ones as targets."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import draw_face, template_landmarks, write_clip
from _tiny_weights import make_tiny_weights

from talking_head.evaluation.closed_open import ClosedOpenConfig, closed_to_open, mouth_opening, select_closed_open
from talking_head.evaluation.evaluate import ModelRunner, val_half
from talking_head.evaluation.report import markdown_report
from talking_head.face.detection import FaceLandmarks


def test_mouth_opening_grows_with_the_inner_lip_gap() -> None:
    closed, half, wide = (mouth_opening(template_landmarks(256, m)) for m in (0.0, 0.5, 1.0))
    assert closed < 0.05 < half < wide and wide - closed == pytest.approx(0.107, abs=0.005)
    assert mouth_opening(template_landmarks(512, 1.0)) == pytest.approx(wide, rel=1e-3)  # size-free


def test_targets_are_the_most_open_frames_away_from_the_shot() -> None:
    openings = [0.5, 0.4, 0.0, 0.9, 0.95, 0.1, 0.2, 0.8, 0.3, 0.85]
    shot, targets = select_closed_open(openings, targets=3, min_gap=1)
    assert shot == 2 and targets == [4, 7, 9]  # 3 (0.9) is next to the shot
    assert select_closed_open(openings, targets=3, min_gap=0)[1] == [3, 4, 9]


def test_val_halves_are_fixed_and_disjoint(tmp_path) -> None:
    clips = [tmp_path / f"{name}.mp4" for name in "dcbafe"]
    select, report = val_half(clips, "select"), val_half(clips, "report")
    assert [p.stem for p in select] == ["a", "c", "e"] and [p.stem for p in report] == ["b", "d", "f"]
    assert sorted(select + report) == sorted(clips) and val_half(clips, None) == sorted(clips)


SIZE = 192
OPENINGS = [0.0, 0.1, 0.2, 0.4, 0.7, 1.0, 0.9, 0.6, 0.3, 0.1, 0.0, 0.05] * 2 + [0.5, 1.0, 0.8]


class _FrameCodeDetector:
    """The cartoon's own landmarks; the frame is told by the grey level of its top-left block."""

    name = "frame-code"

    def __init__(self, points: list[np.ndarray]) -> None:
        self.points = points

    def detect(self, image, box_hint=None) -> FaceLandmarks:
        index = int(round(float(np.asarray(image)[:8, :8].mean()) / 8.0))
        points = self.points[min(index, len(self.points) - 1)]
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        return FaceLandmarks(points, np.array([x0, y0, x1, y1], np.float32), 0.99, 1, self.name)


def test_closed_to_open_scores_warp_ff_and_ft_in_the_lip_square(tmp_path) -> None:
    from talking_head.animation.pipeline import load_model

    points = [template_landmarks(SIZE, m) * 0.7 + SIZE * 0.15 for m in OPENINGS]
    frames = []
    for index, p in enumerate(points):
        frame = draw_face(p.astype(np.float32), SIZE, (200, 160, 140), (90, 100, 110)).copy()
        frame[:8, :8] = index * 8  # the frame's code for the detector
        frames.append(frame)
    clip = write_clip(tmp_path / "person" / "talking.mp4", frames)
    detector = _FrameCodeDetector([p.astype(np.float32) for p in points])
    model = load_model(make_tiny_weights(tmp_path / "weights"), device="cpu")
    runner = ModelRunner(model, detector, precision="fp32")
    part = closed_to_open(
        runner, [(clip, "person/talking.mp4")], {"FF": 0, "FT1": 1}, model.config.image_size, detector,
        ClosedOpenConfig(targets=4, min_gap=2),
    )  # fmt: skip
    result = part["clips"][0]
    assert OPENINGS[result["shot_frame"]] == 0.0
    assert sorted(OPENINGS[i] for i in result["target_frames"]) == [0.9, 1.0, 1.0, 1.0]
    assert part["shot_opening"] < 0.1 < part["target_opening"]
    for method in ("warp", "FF", "FT1"):
        scores = part["overall"][method]
        assert 0.0 < scores["mouth_ssim"] <= 1.0 and scores["mouth_l1"] > 0.0 and scores["clips"] == 1
    assert part["overall"]["real"]["mouth_sharpness"] > 0
    table = markdown_report(
        {"config": {"holdout": 1}, "model_config": {"image_size": 64}, "clips_evaluated": 0, "clips_skipped": 0,
         "landmarks_backend": "x", "timings": {"total_s": 0.0}, "overall": {"self": {}, "cross": {}},
         "clips": [], "closed_to_open": part}
    )  # fmt: skip
    assert "Closed mouth to open" in table and "| FT1 |" in table and "| real |" in table
