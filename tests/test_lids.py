"""Closed lids painted from the photo's lid skin (face/lids.py), on a drawn eye of the synthetic template."""

from __future__ import annotations

import cv2
import numpy as np
from _synthetic import template_landmarks

from talking_head.face import edits
from talking_head.face.lids import lid_gap, paint_closed_lids

SIZE = 256
UPPER_SKIN, LOWER_SKIN, FACE = (240, 120, 120), (120, 120, 240), (200, 180, 160)


def _eye_photo(points: np.ndarray) -> np.ndarray:
    """Face-coloured crop; above each eye a red band (lid skin), below a blue one, the opening black."""
    image = np.full((SIZE, SIZE, 3), FACE, np.uint8)
    for eye in (edits.LEFT_EYE, edits.RIGHT_EYE):
        x0, x1 = points[eye, 0].min() - 6, points[eye, 0].max() + 6
        y = points[eye, 1].mean()
        cv2.rectangle(image, (int(x0), int(y - 18)), (int(x1), int(y)), UPPER_SKIN, -1)
        cv2.rectangle(image, (int(x0), int(y)), (int(x1), int(y + 14)), LOWER_SKIN, -1)
        cv2.fillPoly(image, [np.round(points[eye]).astype(np.int32)], (0, 0, 0))
    return image


def _dark_in(image: np.ndarray, polygon: np.ndarray) -> int:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return int(((image.max(axis=2) < 60) & (mask > 0)).sum())


def test_a_closed_eye_is_covered_by_the_lid_skin_and_the_open_one_is_left_alone() -> None:
    photo = template_landmarks(SIZE)
    crop = _eye_photo(photo)
    target = edits.open_eye(photo, -1.0, "left")
    assert lid_gap(target, "left") < 1e-3 < lid_gap(photo, "left")
    painted = paint_closed_lids(crop, crop, target, photo)
    before, after = _dark_in(crop, photo[edits.LEFT_EYE]), _dark_in(painted, photo[edits.LEFT_EYE])
    assert before > 100 and after < 0.1 * before  # at most a lash line of the opening is left
    # Above the closed lid line: the red lid skin; below: the blue lower lid.
    line = target[[37, 38, 40, 41]].mean(0)
    above, below = painted[int(line[1]) - 4, int(line[0])], painted[int(line[1]) + 4, int(line[0])]
    assert above[0] > 200 and above[2] < 160 and below[2] > 200 and below[0] < 160
    right = edits.RIGHT_EYE
    x0, x1 = int(photo[right, 0].min()) - 20, int(photo[right, 0].max()) + 20
    assert np.array_equal(painted[:, x0:x1], crop[:, x0:x1])  # the right eye stays open
    assert np.array_equal(painted[200:], crop[200:])  # the mouth and chin are untouched


def test_nothing_is_painted_when_no_eye_closes() -> None:
    photo = template_landmarks(SIZE)
    crop = _eye_photo(photo)
    rendered = np.roll(crop, 1, axis=1)  # anything G might have rendered
    assert np.array_equal(paint_closed_lids(rendered, crop, photo, photo), rendered)
    wider = edits.open_eye(photo, 1.0, "right")
    assert np.array_equal(paint_closed_lids(rendered, crop, wider, photo), rendered)


def test_a_half_closed_eye_keeps_part_of_its_opening() -> None:
    photo = template_landmarks(SIZE)
    crop = _eye_photo(photo)
    half = paint_closed_lids(crop, crop, edits.open_eye(photo, -0.5, "left"), photo)
    shut = paint_closed_lids(crop, crop, edits.open_eye(photo, -1.0, "left"), photo)
    before = _dark_in(crop, photo[edits.LEFT_EYE])
    assert _dark_in(shut, photo[edits.LEFT_EYE]) < _dark_in(half, photo[edits.LEFT_EYE]) < 0.8 * before
