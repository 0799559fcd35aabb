"""Image loading: any photo a user can hand us becomes RGB ``uint8`` ``(H, W, 3)``.

``load_image`` accepts a path, raw bytes, a binary file object, a PIL image or a
numpy array and applies the same conversions to all of them:

- EXIF orientation is applied (phone photos are stored rotated).
- Transparency (RGBA, LA, palette with a transparent colour) is composited on
  **white**: cut-out portraits usually have a transparent background, and the
  colour stored under fully transparent pixels is arbitrary (often black).
- Grayscale, palette, CMYK, 16-bit and float images are converted to 8-bit RGB.

Files are checked before they are decoded: the pixel count from the header
must be within ``max_pixels`` (a 9 MB PNG can decode to gigabytes), and a file
that fails to open is called *damaged* only when its first bytes are an image
signature; anything else is *not an image*, whatever its name. With
``max_side`` a large photo is shrunk right after decoding, in its own pixel
format, so decoding one photo holds at most about ``4 · max_pixels`` bytes
(plus a copy while shrinking). Messages name the file by its name, never by a
folder path, and say what to do.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from talking_head.errors import ImageReadError, ImageTooLargeError, UnsupportedFileError

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

# Shown to users when a file is not an image; matches what Pillow decodes here.
ACCEPTED_IMAGE_TYPES = "JPEG, PNG, WebP, BMP, TIFF or GIF"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_WHITE = 255.0

# Largest image decoded by default: 40 megapixels (e.g. 7744 × 5164) covers the
# photos of most cameras and phones; one decoded frame is then at most 160 MB (RGBA).
DEFAULT_MAX_PIXELS = 40_000_000

# First bytes of the image formats Pillow reads here: a file that starts like
# this but cannot be opened is damaged; any other file is not an image at all.
_IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow modes Image.reduce accepts (it refuses palette and bilevel images).
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "I;16"})


def load_image(
    source: ImageSource,
    max_side: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> np.ndarray:
    """Load an image as RGB ``uint8`` of shape ``(H, W, 3)``.

    Args:
        source: file path, bytes-like object, binary file object, PIL image or
            numpy array (``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or
            ``(H, W, 4)`` RGBA; ``uint8``, ``uint16``, bool, or float in ``[0, 1]``).
        max_side: when given, downscale (never upscale) so that the longer side
            is at most this many pixels, keeping the aspect ratio.
        max_pixels: files whose header states more pixels than this are
            refused before decoding (``None``: no limit of our own).
        name: how messages name the input (default: the file's name).

    Raises:
        UnsupportedFileError: the data is not an image (e.g. a text file, whatever its name).
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
        ImageReadError: the file is missing, truncated or corrupt.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    if isinstance(source, np.ndarray):
        rgb = array_to_rgb(source)
    elif isinstance(source, Image.Image):
        rgb = _pil_to_rgb(ImageOps.exif_transpose(source))
    else:
        rgb = _decode(source, max_side, max_pixels, name or _describe(source))
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


def _decode(source: ImageSource, max_side: int | None, max_pixels: int | None, name: str) -> np.ndarray:
    """Open a path / bytes / file object with Pillow, check its size, decode, shrink early."""
    try:
        with _open(source, name) as image:
            check_pixel_count(image.size, max_pixels, name)
            orientation = image.getexif().get(_EXIF_ORIENTATION)
            if max_side is not None and image.format == "JPEG":
                # JPEG can decode at 1/2, 1/4, 1/8 scale: much faster for big photos.
                image.draft("RGB", (max_side, max_side))
            image.load()
            small = _reduce(image, max_side)
            transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
            if transpose is not None:
                small = small.transpose(transpose)
            return _pil_to_rgb(small)
    except Image.DecompressionBombError as error:
        raise _too_large(name, _pixels_in_message(str(error)), max_pixels or Image.MAX_IMAGE_PIXELS) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageReadError(
            f"{name} cannot be read: the image data is damaged or incomplete (for example a cut-off "
            "copy or download). Re-save or re-export the image and try again."
        ) from error


def check_pixel_count(size: tuple[int, int], max_pixels: int | None, name: str) -> None:
    """Raise ``ImageTooLargeError`` when ``size`` ``(W, H)`` has more than ``max_pixels`` pixels."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise _too_large(name, width * height, max_pixels, size)


def _too_large(
    name: str, pixels: int | None, max_pixels: int, size: tuple[int, int] | None = None
) -> ImageTooLargeError:
    stated = f"{size[0]}×{size[1]} pixels ({pixels / 1e6:.0f} megapixels)" if size else (
        f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels"
    )
    side = int((max_pixels * 0.75) ** 0.5)  # a 4:3 photo within the limit
    return ImageTooLargeError(
        f"{name} is {stated}; the limit is {max_pixels / 1e6:g} megapixels. "
        f"Use a smaller image (for example resized to {round(side / 0.75)}×{side} pixels or less)."
    )


def _pixels_in_message(text: str) -> int | None:
    match = re.search(r"\((\d+) pixels\)", text)
    return int(match.group(1)) if match else None


def _reduce(image: Image.Image, max_side: int | None) -> Image.Image:
    """Shrink by a whole factor in the image's own mode, so that no big converted copy is made."""
    longer = max(image.size)
    if max_side is None or longer < 2 * max_side or image.mode not in _REDUCIBLE_MODES:
        return image
    try:
        return image.reduce(longer // max_side)  # still >= max_side: _limit_size makes the exact size
    except ValueError:  # a mode this Pillow cannot reduce: shrink after conversion instead
        return image


def _open(source: ImageSource, name: str) -> Image.Image:
    """``Image.open`` with user-facing errors for missing files and non-images."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        with warnings.catch_warnings():
            # The pixel count is checked by check_pixel_count, with a message of our own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    except FileNotFoundError as error:
        raise ImageReadError(f"Image file not found: {name}. Check the path and try again.") from error
    except IsADirectoryError as error:
        raise ImageReadError(f"{name} is a folder, not an image file. Pass an image file.") from error
    except UnidentifiedImageError as error:
        head = _head(source)
        if _is_heif(head):
            raise UnsupportedFileError(
                f"{name} is a HEIC/AVIF photo, which cannot be read here. "
                f"Convert it to JPEG or PNG (or use another {ACCEPTED_IMAGE_TYPES} image)."
            ) from error
        if head.startswith(_IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
            # Starts like an image but does not open: damaged rather than the wrong kind of file.
            raise ImageReadError(
                f"{name} cannot be read: it starts like an image but its data is damaged or incomplete. "
                "Re-save or re-export the image and try again."
            ) from error
        raise UnsupportedFileError(
            f"{name} is not an image (its content is not a picture, whatever its name). "
            f"Use a {ACCEPTED_IMAGE_TYPES} image."
        ) from error


def _head(source: ImageSource, count: int = 16) -> bytes:
    """The first bytes of a path or file object (empty when they cannot be read)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as file:
                return file.read(count)
        source.seek(0)
        return source.read(count)
    except (OSError, AttributeError, ValueError):
        return b""


def _is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _describe(source: ImageSource) -> str:
    """A short name for error messages: the file's name (never its folder) when there is one."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str):
        return Path(file_name).name or file_name
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
