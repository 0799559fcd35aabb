"""Image loading: any photo a user can hand us becomes RGB ``uint8`` ``(H, W, 3)``.

``load_image`` accepts a path, raw bytes, a binary file object, a PIL image or a
numpy array and applies the same conversions to all of them:

- EXIF orientation is applied (phone photos are stored rotated).
- Transparency (RGBA, LA, palette with a transparent colour) is composited on
  **white**: cut-out portraits usually have a transparent background, and the
  colour stored under fully transparent pixels is arbitrary (often black).
- Grayscale, palette, CMYK, 16-bit and float images are converted to 8-bit RGB.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from talking_head.errors import ImageReadError, UnsupportedFileError

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

# Shown to users when a file is not an image; matches what Pillow decodes here.
ACCEPTED_IMAGE_TYPES = "JPEG, PNG, WebP, BMP, TIFF or GIF"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_WHITE = 255.0


def load_image(source: ImageSource, max_side: int | None = None) -> np.ndarray:
    """Load an image as RGB ``uint8`` of shape ``(H, W, 3)``.

    Args:
        source: file path, bytes-like object, binary file object, PIL image or
            numpy array (``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or
            ``(H, W, 4)`` RGBA; ``uint8``, ``uint16``, bool, or float in ``[0, 1]``).
        max_side: when given, downscale (never upscale) so that the longer side
            is at most this many pixels, keeping the aspect ratio.

    Raises:
        UnsupportedFileError: the data is not an image (e.g. a text file).
        ImageReadError: the file is missing, truncated or corrupt.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    if isinstance(source, np.ndarray):
        rgb = array_to_rgb(source)
    elif isinstance(source, Image.Image):
        rgb = _pil_to_rgb(ImageOps.exif_transpose(source))
    else:
        rgb = _decode(source, max_side)
    return _limit_size(rgb, max_side)


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Convert a grayscale / RGB / RGBA array of any common dtype to RGB ``uint8``.

    Returns the input itself (no copy) when it is already C-contiguous RGB ``uint8``.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError("The image is empty (zero width or height). Please use another image.")
    if array.ndim == 3 and array.shape[2] == 4:
        return _composite_on_white(_to_float255(array))
    if array.dtype != np.uint8:
        array = np.clip(np.rint(_to_float255(array)), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def _to_float255(array: np.ndarray) -> np.ndarray:
    """Map any supported dtype onto float32 in ``[0, 255]``."""
    if array.dtype == np.uint8:
        return array.astype(np.float32)
    if array.dtype == np.bool_:
        return array.astype(np.float32) * 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 257.0
    if np.issubdtype(array.dtype, np.floating):
        # Float images follow the usual [0, 1] convention (skimage, torchvision).
        return np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0
    if np.issubdtype(array.dtype, np.integer):
        # Wider integers: Pillow's mode "I" holds 16-bit PNG data in int32.
        return np.clip(array, 0, 65535).astype(np.float32) / 257.0
    raise ValueError(f"unsupported image dtype {array.dtype}")


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend float ``[0, 255]`` RGBA onto a white background -> RGB uint8."""
    alpha = rgba[:, :, 3:4] / 255.0
    rgb = rgba[:, :, :3] * alpha + _WHITE * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _decode(source: ImageSource, max_side: int | None) -> np.ndarray:
    """Open and decode a path / bytes / file object with Pillow."""
    name = _describe(source)
    try:
        with _open(source, name) as image:
            if max_side is not None and image.format == "JPEG":
                # JPEG can decode at 1/2, 1/4, 1/8 scale: much faster for big photos.
                image.draft("RGB", (max_side, max_side))
            image.load()
            return _pil_to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{name} is too large to open safely ({error}). Use a smaller image.") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageReadError(
            f"Could not decode {name}: the file seems truncated or corrupt ({error}). "
            "Please re-save or re-export the image and try again."
        ) from error


def _open(source: ImageSource, name: str) -> Image.Image:
    """``Image.open`` with user-facing errors for missing files and non-images."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        return Image.open(source)
    except FileNotFoundError as error:
        raise ImageReadError(f"Image file not found: {name}. Check the path and try again.") from error
    except IsADirectoryError as error:
        raise ImageReadError(f"{name} is a folder, not an image file. Pass an image file.") from error
    except UnidentifiedImageError as error:
        suffix = Path(name).suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            # Named like an image but not decodable: damaged rather than the wrong kind of file.
            raise ImageReadError(
                f"Could not read {name}: it is named like an image but its data is corrupt. "
                "Please re-save or re-export the image and try again."
            ) from error
        raise UnsupportedFileError(
            f"{name} is not an image file. Please upload a {ACCEPTED_IMAGE_TYPES} image."
        ) from error


def _describe(source: ImageSource) -> str:
    """A short name for error messages: the file name when there is one."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str):
        return file_name
    return "the uploaded data"


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8, compositing transparency on white."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return _composite_on_white(np.asarray(image.convert("RGBA"), dtype=np.float32))
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer or float grayscale: Pillow's 8-bit conversion would clip, not scale.
        values = np.asarray(image)
        if mode == "F":
            values = values.astype(np.float32)
            scale = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
            return array_to_rgb(values / scale)
        return array_to_rgb(values.astype(np.int64))
    if mode == "RGBX":
        return np.asarray(image, dtype=np.uint8)[:, :, :3].copy()
    # L, 1, P, CMYK, YCbCr, LAB, HSV: Pillow converts these correctly.
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _limit_size(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side`` (area filter: no aliasing)."""
    height, width = rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return rgb
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
