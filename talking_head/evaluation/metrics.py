"""Image, landmark and identity metrics for evaluating generated faces.

All metrics compare a generated crop with the real crop of the same frame
(both RGB ``uint8`` ``(H, W, 3)`` at the same size) or generated landmarks with
the driving ones (``(68, 2)`` pixel coordinates in the crop).

- :func:`ssim`: Gaussian-window SSIM (Wang et al., 2004): 11×11 window,
  σ = 1.5, K1 = 0.01, K2 = 0.03, dynamic range 255, computed on each RGB
  channel and averaged (the convention of scikit-image with
  ``gaussian_weights=True, use_sample_covariance=False, channel_axis=-1``),
  over the "valid" part of the image (no padding at the borders).
- :func:`psnr`: on the ``uint8`` values, capped at :data:`PSNR_CAP_DB` so that
  identical images give a finite number (reports stay plain JSON).
- :func:`l1_error`: mean absolute difference in ``[0, 1]`` units.
- :func:`mouth_metrics`: SSIM and L1 in the square around the target's lip
  landmarks (:func:`mouth_box`), resized to 64×64 (DESIGN §7: where a warp
  fails and G has to paint).
- :func:`sharpness`: variance of the Laplacian of the gray image. SSIM rewards
  blur (a Gaussian blur of a warp raises its SSIM), so SSIM is read beside it.
- :func:`landmark_error`: mean point-to-point distance divided by the
  inter-ocular distance (outer eye corners 36 and 45) of the reference.
- :class:`FaceIdentity`: dlib's 128-d face descriptor
  (``dlib_face_recognition_resnet_model_v1`` from ``face_recognition_models``),
  :func:`identity_similarity` is the cosine of two descriptors (our CSIM; the
  paper used an ArcFace-like network we do not have offline).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import dlib

log = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
# Outer eye corners in the iBUG 68-point layout (right eye's outer, left eye's outer).
OUTER_EYE_CORNERS = (36, 45)
# Lip landmarks in the iBUG 68-point layout: outer (48-59) and inner (60-67) contours.
LIP_POINTS = slice(48, 68)
MOUTH_PAD = 0.25  # margin around the lips on each side, as a fraction of their larger side
MOUTH_SIZE = 64  # side of the mouth square after resizing, pixels


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:  # grayscale: treat as one channel
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected (H, W, C) images, got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (H, W, C) with a 1-D window along H then W."""
    k = len(window)
    rows = np.lib.stride_tricks.sliding_window_view(image, k, axis=0) @ window  # (H-k+1, W, C)
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ window  # (H-k+1, W-k+1, C)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity of two RGB (or grayscale) images, in ``[-1, 1]``.

    Gaussian window 11×11, σ = 1.5, K1 = 0.01, K2 = 0.03 (Wang et al. 2004);
    each channel separately, then the mean. Images smaller than the window
    raise ``ValueError``.
    """
    x, y = _check_pair(a, b)
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} for SSIM, got {x.shape[:2]}")
    w = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, w), _filter_valid(y, w)
    # Biased (population) local variances, as in Wang et al.'s reference code.
    var_x = _filter_valid(x * x, w) - mu_x**2
    var_y = _filter_valid(y * y, w) - mu_y**2
    cov = _filter_valid(x * y, w) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two ``uint8`` images (capped at 100 dB)."""
    x, y = _check_pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def l1_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two ``uint8`` images in ``[0, 1]`` units."""
    x, y = _check_pair(a, b)
    return float(np.mean(np.abs(x - y)) / 255.0)


def image_metrics(generated: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """SSIM, PSNR and L1 of a generated crop against the real one."""
    return {"ssim": ssim(generated, real), "psnr": psnr(generated, real), "l1": l1_error(generated, real)}


def mouth_box(points: np.ndarray, image_size: int, pad: float = MOUTH_PAD) -> tuple[int, int, int, int]:
    """Square ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around the lip landmarks 48-67 of ``(68, 2)`` points.

    The square is centred on the lips' bounding box; its side is the box's
    larger side plus ``pad`` of it on each side (at least 2 px). It is shifted
    to lie inside the ``image_size``² image, and clipped where it is larger.
    """
    lips = np.asarray(points, dtype=np.float64)[LIP_POINTS]
    low, high = lips.min(axis=0), lips.max(axis=0)
    side = max(2.0, float((high - low).max()) * (1.0 + 2.0 * pad))
    side = min(side, float(image_size))
    centre = (low + high) / 2.0
    start = np.clip(np.round(centre - side / 2.0), 0, image_size - round(side)).astype(int)
    end = np.minimum(start + round(side), image_size)
    return int(start[0]), int(start[1]), int(end[0]), int(end[1])


def mouth_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int = MOUTH_SIZE) -> np.ndarray:
    """The ``box`` of an image resized to ``size``² (area averaging to shrink, bilinear to enlarge)."""
    import cv2

    x0, y0, x1, y1 = box
    region = np.ascontiguousarray(np.asarray(image)[y0:y1, x0:x1])
    shrink = region.shape[0] >= size
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def mouth_metrics(
    generated: np.ndarray, real: np.ndarray, points: np.ndarray, size: int = MOUTH_SIZE
) -> dict[str, float]:
    """SSIM and L1 of the mouth: the square :func:`mouth_box` of the target's ``points``, at ``size``².

    ``points`` are the target frame's (68, 2) landmarks in crop pixels (the
    driving landmarks in self-reenactment), so every method is scored on the
    same square of the real frame.
    """
    _check_pair(generated, real)
    box = mouth_box(points, min(np.asarray(real).shape[:2]))
    fake, true = mouth_crop(generated, box, size), mouth_crop(real, box, size)
    return {"mouth_ssim": ssim(fake, true), "mouth_l1": l1_error(fake, true)}


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian (``cv2.Laplacian``, default 3×3 aperture) of the gray RGB ``uint8`` image.

    Higher is sharper; it depends on the image size, so compare crops of one size.

    SSIM rewards blur, so an SSIM gain means something only where this does
    not drop far below the real frames'.
    """
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def inter_ocular_distance(points: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45) of a (68, 2) landmark set."""
    p = np.asarray(points, dtype=np.float64)
    i, j = OUTER_EYE_CORNERS
    return float(np.linalg.norm(p[i] - p[j]))


def landmark_error(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Mean point-to-point distance normalized by the reference's inter-ocular distance.

    Both are (68, 2) in the same pixel coordinates; 0 means identical points,
    0.1 means the points are off by a tenth of the eye distance on average.
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if p.shape != (68, 2) or r.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {p.shape} and {r.shape}")
    iod = inter_ocular_distance(r)
    if iod <= 0:
        raise ValueError("reference landmarks have zero inter-ocular distance")
    return float(np.mean(np.linalg.norm(p - r, axis=1)) / iod)


def identity_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two face descriptors (our CSIM)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denom == 0.0:
        raise ValueError("a face descriptor is all zeros")
    return float(np.dot(a, b) / denom)


def mean_descriptor(descriptors: Iterable[np.ndarray | None]) -> np.ndarray | None:
    """Mean of the descriptors that exist (``None`` entries skipped); ``None`` if none do."""
    found = [d for d in descriptors if d is not None]
    return np.mean(found, axis=0) if found else None


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not ``None`` (or ``None`` if there are none)."""
    found = [float(v) for v in values if v is not None]
    return float(np.mean(found)) if found else None


class FaceIdentity:
    """dlib's 128-d face descriptor: frontal face detector + 5-point aligner + ResNet.

    ``descriptor(image)`` returns ``None`` when no face is found, so callers can
    count misses ("face detected %") instead of crashing. A known ``box``
    (x0, y0, x1, y1) skips detection: useful for images that are not faces.
    """

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        from talking_head.face.dlib_detector import dlib_model_path

        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._aligner = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks.dat")))
        self._encoder = dlib.face_recognition_model_v1(
            str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
        )

    def _largest_face(self, image: np.ndarray) -> dlib.rectangle | None:
        rects = self._detector(image, 0)
        if len(rects) == 0 and self.upsample > 0:
            rects = self._detector(image, self.upsample)
        if len(rects) == 0:
            return None
        return max(rects, key=lambda r: r.width() * r.height())

    def descriptor(self, image: np.ndarray, box: np.ndarray | None = None) -> np.ndarray | None:
        """128-d descriptor of the largest face in an RGB uint8 image, or ``None`` if none is found."""
        import dlib

        image = np.ascontiguousarray(image, dtype=np.uint8)
        if box is None:
            rect = self._largest_face(image)
            if rect is None:
                return None
        else:
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            rect = dlib.rectangle(x0, y0, x1, y1)
        shape = self._aligner(image, rect)
        return np.asarray(self._encoder.compute_face_descriptor(image, shape), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def get_face_identity() -> FaceIdentity:
    """The shared :class:`FaceIdentity` (its models load once per process)."""
    return FaceIdentity()
