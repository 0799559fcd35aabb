"""The default weights in weights/: they load with no configuration, fit the size cap and render."""

from __future__ import annotations

import stat

import numpy as np
import pytest
from conftest import ASTRONAUT, REPO_ROOT

WEIGHTS = REPO_ROOT / "weights"
pytestmark = pytest.mark.skipif(
    not (WEIGHTS / "config.json").exists(), reason="no weights shipped in weights/"
)


def test_shipped_weights_fit_the_cap_and_are_readable() -> None:
    files = [p for p in WEIGHTS.iterdir() if p.suffix in (".json", ".safetensors")]
    assert sum(p.stat().st_size for p in files) <= 50 * 1024 * 1024
    for path in files:
        assert path.stat().st_mode & stat.S_IROTH, path


def test_shipped_weights_load_and_render_the_example_photo() -> None:
    from talking_head.animation import pipeline
    from talking_head.nets.config import ModelConfig
    from talking_head.nets.warp import warp_person_crops

    model = pipeline.load_model(WEIGHTS, device="cpu")
    assert model.config == ModelConfig.preset("cpu")  # the shipped preset, warp-guided
    person = pipeline.embed_person(model, [ASTRONAUT])
    points = person.shot_landmarks[:1] + np.array([2.0, -1.0], dtype=np.float32)  # a small head move
    rendered = next(pipeline.render_landmarks(model, person, points)).astype(np.float32)
    warp = warp_person_crops(person.shots, person.shot_landmarks, points)[0].astype(np.float32)
    # G refines the warp of the photo: the face stays the photo's (close to its warp), not noise.
    assert np.abs(rendered - warp).mean() < 20.0
