"""K-shot blending (talking_head/nets/shot_blend.py): by face likeness, and inside the lips by mouth shape."""

from __future__ import annotations

import numpy as np
import torch

from talking_head.face.edits import open_mouth
from talking_head.face.landmarks import get_detector
from talking_head.media.images import load_image
from talking_head.nets.shot_blend import blend_warps, mouth_mask, mouth_shot_weights, shot_weights
from talking_head.nets.warp import warp_shots


def _face(astronaut_path) -> np.ndarray:
    """The astronaut's landmarks scaled into a 256² crop."""
    points = get_detector("dlib").detect(load_image(astronaut_path)).points
    return (points - points.min(0)) / (points.max(0) - points.min(0)).max() * 160 + 48


def _shots(face: np.ndarray) -> torch.Tensor:
    """Shot 0: the same head, mouth wide open. Shot 1: the head moved 12 px, mouth as the target's (closed)."""
    return torch.from_numpy(np.stack([open_mouth(face, 1.0), face + np.float32([12, 0])])).float()


def test_mouth_weights_follow_the_mouths_shape_and_face_weights_the_whole_face(astronaut_path) -> None:
    face = _face(astronaut_path)
    shots, target = _shots(face), torch.from_numpy(face[None]).float()
    assert shot_weights(shots, target)[0].argmax() == 0  # nearer overall: same place, only the mouth differs
    assert mouth_shot_weights(shots, target)[0].argmax() == 1  # the same mouth shape, elsewhere


def test_the_lip_region_covers_the_lips_and_not_the_eyes(astronaut_path) -> None:
    face = _face(astronaut_path)
    mask = mouth_mask(torch.from_numpy(face[None]).float(), 256)[0, 0]
    for x, y in face[48:68]:
        assert mask[int(round(y)), int(round(x))] > 0.9
    for x, y in face[36:48]:
        assert mask[int(round(y)), int(round(x))] == 0
    assert mask.shape == (256, 256) and 0 <= mask.min() and mask.max() <= 1


def test_a_mouth_aware_blend_takes_the_lips_from_the_nearest_mouth(astronaut_path) -> None:
    face = _face(astronaut_path)
    shots, target = _shots(face), torch.from_numpy(face[None]).float()
    warped = [torch.full((1, 3, 256, 256), -1.0), torch.full((1, 3, 256, 256), 1.0)]
    plain = blend_warps(warped, shots, target)
    aware = blend_warps(warped, shots, target, mouth_aware=True)
    lips = face[48:68].mean(0).round().astype(int)
    eye = face[36].round().astype(int)
    assert plain[0, 0, lips[1], lips[0]] < -0.9  # face-wide: shot 0 everywhere
    assert aware[0, 0, lips[1], lips[0]] > 0.9  # inside the lips: shot 1, the same mouth shape
    assert torch.equal(aware[0, :, eye[1], eye[0]], plain[0, :, eye[1], eye[0]])  # elsewhere unchanged


def test_one_shot_is_its_own_warp_and_the_default_blend_is_mouth_aware(astronaut_path) -> None:
    face = _face(astronaut_path)
    image = torch.rand(1, 3, 256, 256)
    assert (
        blend_warps(
            [image],
            torch.from_numpy(face[None]).float(),
            torch.from_numpy(face[None]).float(),
            mouth_aware=True,
        )
        is image
    )
    shots = torch.rand(2, 3, 64, 64) * 2 - 1
    points = _shots(face) / 4
    target = torch.from_numpy(face[None] / 4).float()
    default = warp_shots(shots, points, target)
    assert torch.equal(default, warp_shots(shots, points, target, mouth_aware=True))
    assert not torch.equal(default, warp_shots(shots, points, target, mouth_aware=False))
