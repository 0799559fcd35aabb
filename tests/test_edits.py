"""Named landmark edits (face/edits.py): each moves what it names, by its amount, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import template_landmarks

from talking_head.face import edits
from talking_head.face.motion import estimate_yaw


def _face(mouth_open: float = 0.0) -> np.ndarray:
    return template_landmarks(256, mouth_open=mouth_open)


def _tilted(points: np.ndarray, degrees: float) -> np.ndarray:
    return edits.roll_head(points, degrees)


def _others(region: str) -> list[int]:
    moved = set(edits.REGIONS[region])
    return [i for name, idx in edits.REGIONS.items() if name != region for i in idx if i not in moved]


def _max_move(a: np.ndarray, b: np.ndarray, indices: list[int]) -> float:
    iod = np.linalg.norm(a[45] - a[36])
    return float(np.linalg.norm(a[indices] - b[indices], axis=1).max() / iod)


def test_amount_zero_changes_nothing_for_every_edit() -> None:
    face = _face()
    assert np.array_equal(edits.apply_edits(face, edits.EditSettings()), face)
    for name in edits.EDIT_NAMES:
        assert np.allclose(edits.apply_edits(face, edits.EditSettings(**{name: 0.0})), face)


def test_mouth_open_opens_the_inner_lips_and_moves_only_mouth_and_chin() -> None:
    face = _face()
    opened = edits.open_mouth(face, 1.0)
    assert edits.inner_lip_gap(face) < 0.05
    assert edits.inner_lip_gap(opened) == pytest.approx(edits.inner_lip_gap(face) + edits.MAX_MOUTH_OPEN, abs=0.01)
    assert _max_move(face, opened, _others("mouth")) == 0
    assert opened[8, 1] > face[8, 1]  # the chin drops with the lip
    assert edits.inner_lip_gap(edits.open_mouth(face, 0.5)) < edits.inner_lip_gap(opened)


def test_negative_mouth_open_and_close_lips_close_an_open_mouth() -> None:
    face = _face(mouth_open=1.0)
    assert edits.inner_lip_gap(face) > 0.1
    assert edits.inner_lip_gap(edits.close_lips(face)) < 0.01
    half = edits.inner_lip_gap(edits.open_mouth(face, -0.5))
    assert half == pytest.approx(edits.inner_lip_gap(face) / 2, abs=0.01)
    assert _max_move(face, edits.close_lips(face), _others("mouth")) == 0


def test_edits_follow_a_tilted_face() -> None:
    tilted = _tilted(_face(), 25)
    opened = edits.open_mouth(tilted, 1.0)
    assert edits.inner_lip_gap(opened) == pytest.approx(edits.inner_lip_gap(tilted) + edits.MAX_MOUTH_OPEN, abs=0.01)
    closed = edits.open_eye(tilted, -1.0, "left")
    assert edits.eyelid_gap(closed, "left") < 0.01


def test_each_eye_closes_and_widens_alone() -> None:
    face = _face()
    for side, other in (("left", "right"), ("right", "left")):
        closed = edits.open_eye(face, -1.0, side)
        assert edits.eyelid_gap(closed, side) < 0.005
        assert edits.eyelid_gap(closed, other) == pytest.approx(edits.eyelid_gap(face, other))
        wide = edits.open_eye(face, 1.0, side)
        assert edits.eyelid_gap(wide, side) == pytest.approx(1.6 * edits.eyelid_gap(face, side), rel=0.02)
        assert _max_move(face, closed, edits.MOUTH + edits.BROWS + edits.JAW) == 0
    with pytest.raises(ValueError, match="side"):
        edits.open_eye(face, 1.0, "middle")


def test_smile_lifts_and_widens_the_corners_symmetrically() -> None:
    face = _face()
    smiling = edits.smile(face, 1.0)
    width = lambda p: p[54, 0] - p[48, 0]  # noqa: E731
    assert width(smiling) > width(face)
    assert smiling[48, 1] < face[48, 1] and smiling[54, 1] < face[54, 1]
    assert smiling[48, 1] == pytest.approx(smiling[54, 1])
    frown = edits.smile(face, -1.0)
    assert frown[48, 1] > face[48, 1]
    assert _max_move(face, smiling, _others("mouth")) == 0


def test_pout_narrows_the_mouth() -> None:
    face = _face()
    pouted = edits.pout(face, 1.0)
    width = lambda p: p[54, 0] - p[48, 0]  # noqa: E731
    assert width(pouted) == pytest.approx(width(face) * (1 - edits.MAX_POUT), rel=0.01)
    assert width(edits.pout(face, -1.0)) > width(face)
    assert _max_move(face, pouted, _others("mouth")) == 0


def test_brows_move_up_and_down_alone() -> None:
    face = _face()
    raised = edits.raise_brows(face, 1.0)
    iod = np.linalg.norm(face[45] - face[36])
    lift = (face[edits.BROWS, 1] - raised[edits.BROWS, 1]) / iod
    assert lift.min() > 0.08 and lift.max() < 0.15
    assert (edits.raise_brows(face, -1.0)[edits.BROWS, 1] > face[edits.BROWS, 1]).all()
    assert _max_move(face, raised, _others("brows")) == 0


def test_roll_rotates_the_eye_axis_by_the_angle() -> None:
    face = _face()
    rolled = edits.roll_head(face, 10.0)
    axis = rolled[45] - rolled[36]
    assert np.degrees(np.arctan2(axis[1], axis[0])) == pytest.approx(10.0, abs=1e-3)
    assert np.allclose(edits.roll_head(rolled, -10.0), face, atol=1e-3)


def test_yaw_turns_the_nose_towards_the_side_and_pitch_moves_it_vertically() -> None:
    face = _face()
    assert abs(estimate_yaw(face)) < 1
    assert estimate_yaw(edits.yaw_head(face, 1.0)) > 10
    assert estimate_yaw(edits.yaw_head(face, -1.0)) < -10
    up = edits.pitch_head(face, 1.0)
    eyes_to_nose = lambda p: p[30, 1] - p[[36, 45], 1].mean()  # noqa: E731
    assert up[30, 1] < face[30, 1]
    assert eyes_to_nose(up) < eyes_to_nose(face)  # the nose tip, in front, rises towards the eyes
    assert eyes_to_nose(edits.pitch_head(face, -1.0)) > eyes_to_nose(face)


def test_apply_edits_combines_regions_and_keeps_shape_and_dtype() -> None:
    face = _face()
    out = edits.apply_edits(face, edits.EditSettings(mouth_open=1.0, left_eye=-1.0, right_eye=-1.0))
    assert out.shape == (68, 2) and out.dtype == np.float32
    assert edits.inner_lip_gap(out) > 0.3 and edits.eyelid_gap(out, "left") < 0.01
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        edits.apply_edits(face[:60], edits.EditSettings(smile=1.0))


def test_check_edit_settings_names_the_edit_and_its_range() -> None:
    assert edits.check_edit_settings({"mouth_open": 0.6}) == edits.EditSettings(mouth_open=0.6)
    assert edits.check_edit_settings({"roll": -30}).roll == -30
    with pytest.raises(ValueError, match="mouth_open must be between -1 and 1"):
        edits.check_edit_settings({"mouth_open": 2})
    with pytest.raises(ValueError, match="unknown edit 'grin'"):
        edits.check_edit_settings({"grin": 0.5})
    assert not edits.EditSettings(smile=0.1).is_identity() and edits.EditSettings().is_identity()
