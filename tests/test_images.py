"""load_image: every input kind and pixel format becomes RGB uint8 (H, W, 3)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from _bad_inputs import png_header_only, write_uniform_png
from PIL import Image

from talking_head.errors import ImageReadError, ImageTooLargeError, TalkingHeadError, UnsupportedFileError
from talking_head.media.images import array_to_rgb, load_image

EXIF_ORIENTATION = 0x0112


def _gradient(height: int = 40, width: int = 60) -> np.ndarray:
    """An asymmetric RGB test pattern (so rotations and flips are detectable)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).astype(np.uint8)


def _png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def test_astronaut_loads_as_rgb_uint8(astronaut_path: Path) -> None:
    image = load_image(astronaut_path)
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert image.std() > 20  # a real photo, not a blank array


def test_path_bytes_file_pil_and_array_inputs_agree(tmp_path: Path) -> None:
    rgb = _gradient()
    data = _png_bytes(Image.fromarray(rgb))
    path = tmp_path / "pattern.png"
    path.write_bytes(data)
    for source in (path, str(path), data, bytearray(data), io.BytesIO(data), Image.fromarray(rgb), rgb):
        np.testing.assert_array_equal(load_image(source), rgb)


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = 40
    rgba[:5, :, 3] = 255  # top half opaque
    rgba[5:, :, 3] = 0  # bottom half transparent
    image = load_image(Image.fromarray(rgba, "RGBA"))
    assert image.shape == (10, 10, 3)
    assert (image[:5] == 40).all()
    assert (image[5:] == 255).all()
    np.testing.assert_array_equal(load_image(rgba), image)  # arrays get the same treatment


def test_half_transparent_pixel_blends() -> None:
    rgba = np.array([[[0, 0, 0, 128]]], dtype=np.uint8)
    assert abs(int(load_image(rgba)[0, 0, 0]) - 127) <= 1


def test_grayscale_palette_and_bilevel_modes() -> None:
    gray = np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5)
    for image in (Image.fromarray(gray, "L"), Image.fromarray(gray, "L").convert("P")):
        rgb = load_image(image)
        assert rgb.shape == (5, 5, 3)
        np.testing.assert_array_equal(rgb[..., 0], gray)
        np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    bilevel = load_image(Image.fromarray(gray > 100).convert("1"))
    assert set(np.unique(bilevel)) <= {0, 255}


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    rgb = load_image(path)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 100, 255])


def test_array_dtypes() -> None:
    np.testing.assert_array_equal(array_to_rgb(np.array([[0.0, 1.0]]))[0, :, 1], [0, 255])
    np.testing.assert_array_equal(array_to_rgb(np.array([[False, True]]))[0, :, 2], [0, 255])
    assert array_to_rgb(np.zeros((3, 4, 1), dtype=np.uint8)).shape == (3, 4, 3)
    rgb = _gradient()
    assert array_to_rgb(rgb) is rgb  # RGB uint8 is passed through without a copy
    with pytest.raises(ValueError):
        array_to_rgb(np.zeros((3, 4, 2), dtype=np.uint8))


@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, stored_as: Image.Transpose) -> None:
    upright = _gradient()
    stored = Image.fromarray(upright).transpose(stored_as)  # what a camera writes to disk
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = tmp_path / "phone.png"
    stored.save(path, exif=exif)
    np.testing.assert_array_equal(load_image(path), upright)


def test_max_side_downscales_keeping_aspect() -> None:
    image = load_image(_gradient(40, 60), max_side=30)
    assert image.shape == (20, 30, 3)
    assert load_image(_gradient(40, 60), max_side=100).shape == (40, 60, 3)  # never upscales


def test_jpeg_draft_with_max_side(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((800, 1200, 3), 90, dtype=np.uint8)).save(path, quality=95)
    image = load_image(path, max_side=300)
    assert image.shape == (200, 300, 3)
    assert abs(float(image.mean()) - 90) < 3


def test_text_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(UnsupportedFileError) as info:
        load_image(path)
    assert "notes.txt" in str(info.value) and "PNG" in str(info.value)


def test_truncated_png_is_a_read_error(tmp_path: Path) -> None:
    data = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "broken.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert "broken.png" in str(info.value)


def test_garbage_that_starts_like_a_jpeg_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00\x01garbage" * 10)
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert "damaged" in str(info.value) and not isinstance(info.value, UnsupportedFileError)


def test_text_named_like_a_photo_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text("hello, I am a text file with a photo's name\n")
    with pytest.raises(UnsupportedFileError) as info:
        load_image(path)
    message = str(info.value)
    assert "photo.jpg is not an image" in message and "damaged" not in message
    assert str(tmp_path) not in message  # the file's name, never the folder it sits in


def test_too_many_pixels_is_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(12000, 12000))  # no pixel data: decoding it would fail
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path, max_side=1024, max_pixels=40_000_000)
    message = str(info.value)
    assert "12000×12000" in message and "40 megapixels" in message and "damaged" not in message


def test_a_decompression_bomb_names_the_limit_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20000, 20000))  # beyond Pillow's own bomb limit
    with pytest.raises(ImageTooLargeError, match="megapixels; the limit is 40 megapixels"):
        load_image(path)


def test_a_real_image_over_the_pixel_limit_is_refused_and_one_under_loads(tmp_path: Path) -> None:
    path = write_uniform_png(tmp_path / "big.png", 3000, 2000, value=77)
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=5_000_000)
    image = load_image(path, max_side=512, max_pixels=6_000_000)  # shrunk while decoding
    assert image.shape == (341, 512, 3) and int(image[10, 10, 0]) == 77


def test_shrinking_while_decoding_keeps_exif_rotation(tmp_path: Path) -> None:
    upright = np.kron(_gradient(40, 60), np.ones((10, 10, 1), dtype=np.uint8))  # (400, 600, 3)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    path = tmp_path / "phone.png"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    image = load_image(path, max_side=150)
    assert image.shape == (100, 150, 3)
    expected = load_image(upright, max_side=150)
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 4


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_errors_are_user_facing() -> None:
    assert issubclass(ImageReadError, TalkingHeadError) and issubclass(UnsupportedFileError, TalkingHeadError)
    with pytest.raises(TalkingHeadError):
        load_image(b"plain text bytes")
