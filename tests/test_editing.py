"""Expression editing (animation/editing.py) and the ``edit`` command, with tiny weights and the example photo."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _tiny_weights import make_tiny_weights
from PIL import Image

from talking_head.__main__ import main
from talking_head.animation import editing, pipeline
from talking_head.face.edits import EditSettings, inner_lip_gap
from talking_head.face.framing import points_to_crop
from talking_head.face.landmarks import get_detector


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("tiny_weights"))


@pytest.fixture(scope="module")
def model(weights: Path):
    return pipeline.load_model(weights, device="cpu")


@pytest.fixture(scope="module")
def detector():
    return get_detector("dlib")


def _edit(model, photo, settings, detector, cache=None):
    return editing.edit_photo(model, photo, settings, detector, cache=cache, precision="fp32", runtime="torch")


def test_an_edit_renders_a_still_of_the_photos_size_with_the_edited_landmarks(model, detector, astronaut_path) -> None:
    photo = np.asarray(Image.open(astronaut_path).convert("RGB"))
    result = _edit(model, astronaut_path, EditSettings(mouth_open=1.0), detector)
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    size = model.config.image_size
    assert result.crop.shape == (size, size, 3)
    person = editing.PersonCache().person(model, astronaut_path, detector)
    assert inner_lip_gap(result.landmarks) == pytest.approx(inner_lip_gap(person.source_landmarks) + 0.32, abs=0.01)
    # The landmarks in photo pixels are the crop landmarks mapped back.
    assert np.allclose(points_to_crop(result.photo_landmarks, person.source_box, size), result.landmarks, atol=1e-3)


def test_an_edit_changes_the_mouth_and_leaves_the_photo_outside_the_face(model, detector, astronaut_path) -> None:
    cache = editing.PersonCache()
    plain = _edit(model, astronaut_path, EditSettings(), detector, cache)
    opened = _edit(model, astronaut_path, EditSettings(mouth_open=1.0), detector, cache)
    photo = np.asarray(Image.open(astronaut_path).convert("RGB"))
    lips = opened.photo_landmarks[48:68]
    x0, y0 = np.floor(lips.min(0)).astype(int)
    x1, y1 = np.ceil(lips.max(0)).astype(int)
    mouth_change = np.abs(opened.image[y0:y1, x0:x1].astype(int) - plain.image[y0:y1, x0:x1]).mean()
    assert mouth_change > 5
    box = cache.person(model, astronaut_path, detector).source_box
    right = int(np.ceil(box.x0 + box.size)) + 2
    assert right < photo.shape[1] and np.array_equal(opened.image[:, right:], photo[:, right:])  # outside the crop
    assert cache.hits == 2  # the second edit did not embed the photo again


def test_the_cache_keys_photos_by_their_bytes(model, detector, astronaut_path, tmp_path) -> None:
    copy = tmp_path / "renamed.png"
    shutil.copy(astronaut_path, copy)
    cache = editing.PersonCache(size=1)
    first = cache.person(model, astronaut_path, detector)
    assert cache.person(model, copy, detector) is first and cache.hits == 1


def test_landmarks_beside_draws_on_the_rendered_crop(model, detector, astronaut_path) -> None:
    result = _edit(model, astronaut_path, EditSettings(smile=1.0), detector)
    panel = editing.landmarks_beside(result)
    assert panel.shape == (256, 256, 3)  # the tiny model's 64 px crop, enlarged
    plain = editing.landmarks_beside(result, min_size=0)
    assert plain.shape == result.crop.shape and not np.array_equal(plain, result.crop)


def test_edit_command_writes_the_still_and_the_landmark_panel(weights, astronaut_path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TALKING_HEAD_RUNTIME", "torch")
    out, panel = tmp_path / "x.png", tmp_path / "panel.png"
    argv = ["edit", str(astronaut_path), "--mouth-open", "0.6", "--left-eye", "-1", "--out", str(out)]
    argv += ["--landmarks-out", str(panel), "--weights", str(weights), "--landmarks", "dlib", "--device", "cpu"]
    assert main(argv + ["--precision", "fp32"]) == 0
    assert Image.open(out).size == Image.open(astronaut_path).size
    assert Image.open(panel).size == (256, 256)  # the tiny model's crop


def test_edit_command_refuses_out_of_range_amounts_and_bad_paths(astronaut_path, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["edit", str(astronaut_path), "--smile", "4", "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert "--smile: must be between -1 and 1" in capsys.readouterr().err
    assert main(["edit", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing.png does not exist" in capsys.readouterr().err
    assert main(["edit", str(astronaut_path), "--out", str(tmp_path / "x.gif")]) == 2
