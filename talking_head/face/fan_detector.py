"""face-alignment's FAN 2D network with its S3FD face detector: the paper's landmark detector.

Its weights are downloaded on first use (internet needed once; never with
``HF_HUB_OFFLINE`` set); without them construction raises ``WeightsError``.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from talking_head.errors import NoFaceError, WeightsError
from talking_head.face.detection import (
    FAN_MIN_SCORE,
    NO_FACE_MESSAGE,
    FaceLandmarks,
    box_of_points,
    check_box_hint,
    downscale,
    largest_box,
    resolve_device,
    select_faces,
    to_rgb,
)
from talking_head.media.images import ImageSource

# face-alignment 1.5.0 downloads these on first use; we fetch them ourselves with a
# timeout (torch.hub's downloader has none and can hang forever without internet).
FAN_WEIGHT_URLS = {
    "fan": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    "s3fd": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
}


def fan_weights_dir() -> Path:
    """Where face-alignment looks for its cached weights: ``<torch hub dir>/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def ensure_fan_weights(timeout: float = 30.0) -> dict[str, Path]:
    """Return the local paths of the FAN and S3FD weights, downloading missing ones.

    No download is attempted when ``HF_HUB_OFFLINE`` is set (the usual offline
    switch of this project). Raises ``WeightsError`` when a file is missing and
    cannot be fetched within ``timeout`` seconds per network operation.
    """
    folder = fan_weights_dir()
    paths = {key: folder / url.rsplit("/", 1)[1] for key, url in FAN_WEIGHT_URLS.items()}
    for key, path in paths.items():
        if not path.is_file():
            _download(FAN_WEIGHT_URLS[key], path, timeout)
    return paths


def _download(url: str, path: Path, timeout: float) -> None:
    """Fetch ``url`` into ``path`` atomically; ``WeightsError`` on any failure."""
    hint = (
        f"Connect to the internet once so that it can be downloaded, or copy {path.name} into "
        f"{path.parent}, or use the offline dlib backend (TALKING_HEAD_LANDMARKS=dlib)."
    )
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise WeightsError(f"FAN weights {path.name} are not cached and HF_HUB_OFFLINE is set. {hint}")
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(partial, path)
    except (OSError, ValueError) as error:  # URLError and socket timeouts are OSErrors
        partial.unlink(missing_ok=True)
        raise WeightsError(f"Could not download the FAN weights from {url} ({error}). {hint}") from error


class FanDetector:
    """face-alignment's FAN 2D (4 hourglass stacks) with its S3FD face detector.

    Only face-alignment's network classes are used; the crop and the heatmap
    decoding are done here with numpy/OpenCV (its own helpers are numba-jitted
    and cost tens of seconds of compilation in every new process). The math
    follows face-alignment: a square crop of side ``200 * (w + h) / 195`` around
    the box centre moved up by 12% of the box height, resized to 256x256; the
    arg-max of each 64x64 heatmap moved a quarter cell towards its larger
    neighbour. Points are not rounded to whole pixels.

    Construction loads (and if needed downloads) the weights and raises
    ``WeightsError`` when they are unavailable. ``confidence`` is the S3FD face
    probability after a full search; with ``box_hint`` (no face search) it is
    the mean heatmap peak, and results below ``min_hint_score`` raise
    ``NoFaceError`` so that a tracker re-detects.
    """

    name = "fan"

    def __init__(
        self,
        device: str | None = None,
        detect_max_side: int = 640,
        min_hint_score: float = 0.2,
        download_timeout: float = 30.0,
    ) -> None:
        self.device = resolve_device(device)
        self.detect_max_side = detect_max_side  # longer side of the copy S3FD searches
        self.min_hint_score = min_hint_score  # mean heatmap peak below which a hinted face counts as lost
        paths = ensure_fan_weights(download_timeout)
        self._network, self._face_detector = self._load(paths)
        self._lock = threading.Lock()

    def _load(self, paths: dict[str, Path]):  # -> (face_alignment FAN, SFDDetector)
        import pickle

        import torch
        from face_alignment.detection.sfd.sfd_detector import SFDDetector
        from face_alignment.models import FAN

        try:
            network = FAN(4)
            network.load_state_dict(torch.load(paths["fan"], map_location=self.device, weights_only=True))
            network.to(self.device).eval()
            face_detector = SFDDetector(device=self.device, path_to_detector=str(paths["s3fd"]))
        except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as error:
            raise WeightsError(
                f"The FAN landmark weights in {paths['fan'].parent} could not be loaded ({error}). "
                "Delete the damaged files so they are downloaded again, or use the dlib backend "
                "(TALKING_HEAD_LANDMARKS=dlib)."
            ) from error
        return network, face_detector

    def detect(self, image: ImageSource, box_hint: np.ndarray | None = None) -> FaceLandmarks:
        """Landmarks of the largest face in ``image`` (at ``box_hint`` if given, no face search)."""
        rgb = to_rgb(image)
        hint = check_box_hint(box_hint)
        with self._lock:
            if hint is None:
                boxes = select_faces(self._search_full(rgb), min_score=FAN_MIN_SCORE)
                if len(boxes) == 0:
                    raise NoFaceError(NO_FACE_MESSAGE)
                box = boxes[largest_box(boxes)]
                points, _ = self._align(rgb, box[:4])
                return FaceLandmarks(points, box[:4].astype(np.float32), float(box[4]), len(boxes), self.name)
            points, score = self._align(rgb, hint)
        if not score >= self.min_hint_score:
            raise NoFaceError(NO_FACE_MESSAGE)
        return FaceLandmarks(points, fan_box_from_points(points), score, 1, self.name)

    def _search_full(self, rgb: np.ndarray) -> np.ndarray:
        """S3FD boxes (K, 5): x0, y0, x1, y1, probability, in ``rgb`` coordinates."""
        small, scale = downscale(rgb, self.detect_max_side)
        found = self._face_detector.detect_from_image(np.ascontiguousarray(small))
        boxes = np.array([np.asarray(b, dtype=np.float64)[:5] for b in found]).reshape(-1, 5)
        boxes[:, :4] /= scale
        return boxes

    def _align(self, rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        """FAN on one face box -> points (68, 2) and the mean heatmap peak in [0, 1]."""
        import torch

        center, side = _fan_crop_square(box)
        crop = _crop_square(rgb, center, side, _FAN_INPUT_PX)  # (256, 256, 3)
        batch = torch.from_numpy(crop).permute(2, 0, 1)[None].to(self.device, torch.float32) / 255.0
        with torch.no_grad():
            heatmaps = self._network(batch)[-1][0].float().cpu().numpy()  # (68, 64, 64)
        cells, peaks = _decode_heatmaps(heatmaps)  # (68, 2) in heatmap cells
        scale = side / heatmaps.shape[-1]
        points = center + (cells - heatmaps.shape[-1] / 2) * scale - 0.5  # continuous -> pixel-centre coords
        return points.astype(np.float32), float(np.clip(peaks.mean(), 0.0, 1.0))


_FAN_INPUT_PX = 256  # FAN's input resolution
_FAN_REFERENCE_SCALE = 195.0  # face-alignment: S3FD box (w + h) / 195 = crop side / 200
_FAN_CENTER_SHIFT = 0.12  # face-alignment moves the crop centre up by 12% of the box height


def _fan_crop_square(box: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and side of FAN's square input crop for a face box, in continuous pixel coords."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2 - _FAN_CENTER_SHIFT * (y1 - y0)])
    side = 200.0 * ((x1 - x0) + (y1 - y0)) / _FAN_REFERENCE_SCALE
    return center, side


def _crop_square(rgb: np.ndarray, center: np.ndarray, side: float, size: int) -> np.ndarray:
    """The square (centre, side) of ``rgb`` resampled to (size, size, 3); black outside the image."""
    scale = size / side
    # Continuous coords (pixel i spans [i, i+1)): crop u = (x - centre) * scale + size / 2.
    shift = (0.5 - center) * scale + size / 2 - 0.5
    matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def _decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell peak positions (N, 2) in continuous heatmap coords and peak values (N,).

    heatmaps (N, R, R). The arg-max cell centre is moved a quarter cell towards
    the larger neighbour on each axis (where both neighbours exist).
    """
    count, rows, cols = heatmaps.shape
    flat = heatmaps.reshape(count, -1)
    index = flat.argmax(axis=1)
    peaks = flat[np.arange(count), index]
    y, x = np.divmod(index, cols)
    inner = (x > 0) & (x < cols - 1) & (y > 0) & (y < rows - 1)
    xs, ys = np.clip(x, 1, cols - 2), np.clip(y, 1, rows - 2)
    n = np.arange(count)
    dx = np.sign(heatmaps[n, ys, xs + 1] - heatmaps[n, ys, xs - 1]) * inner
    dy = np.sign(heatmaps[n, ys + 1, xs] - heatmaps[n, ys - 1, xs]) * inner
    cells = np.stack([x + 0.5 + 0.25 * dx, y + 0.5 + 0.25 * dy], axis=1)
    return cells, peaks


def fan_box_from_points(points: np.ndarray) -> np.ndarray:
    """An S3FD-like face box (4,) from FAN landmarks, used as the next frame's ``box_hint``.

    S3FD boxes reach above the brows to the forehead; landmarks stop at the
    brows, so the tight box is extended upwards by a fifth of its height.
    """
    x0, y0, x1, y1 = box_of_points(points)
    return np.array([x0, y0 - 0.2 * (y1 - y0), x1, y1], dtype=np.float32)
