"""Prepared-clip storage and the meta-learning episode dataset.

Prepared data layout (written by :mod:`talking_head.training.prepare`)::

    DATA/
      manifest.jsonl                     one JSON object per source clip (kept or skipped)
      clips/<identity>/<clip>.npz        one file per kept clip

``manifest.jsonl`` fields: ``identity``, ``clip`` (path of the clip below its
identity folder, without ``.mp4``: ``talk`` or, for VoxCeleb2, ``video/00001``),
``source`` (path relative to the videos folder), ``file`` (the ``.npz`` relative
to DATA, ``null`` when skipped), ``frames_used``, ``frames_total``, ``fps``,
``frame_size`` ``[W, H]``, ``face_size`` (median crop side in source pixels),
``backend`` (landmark detector), ``bytes`` (size of the ``.npz``), ``skipped``
(``null`` or ``"category: detail"``) and ``seconds`` (processing time). A clip
prepared again gets a new line; the newest line of a ``source`` wins.

A clip ``.npz`` (no pickles; ``np.load(..., allow_pickle=False)``) holds

- ``jpeg_data`` ``uint8 (total,)`` and ``jpeg_offsets`` ``int64 (F + 1,)``: F
  JPEG-encoded RGB crops (frame f is ``jpeg_data[off[f]:off[f + 1]]``), each
  ``image_size``² and framed by the shared framing function;
- ``landmarks`` ``float16 (F, 68, 2)``: iBUG points in crop pixels;
- ``boxes`` ``float32 (F, 3)``: the crop boxes ``(x0, y0, size)`` in source pixels;
- ``frame_indices`` ``int32 (F,)``: which source frames were used;
- ``image_size`` and ``format_version`` (scalars).

The episode dataset draws, for video i, K shot frames and one target frame
(distinct when the clip has enough frames), rasterizes their landmarks and
returns the index i, which selects the row W_i of the discriminator.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from talking_head.errors import TalkingHeadError
from talking_head.face.framing import CropBox, crop_image, points_to_crop
from talking_head.face.motion import flip_landmarks
from talking_head.face.raster import rasterize_landmarks

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
CLIPS_DIR = "clips"


# ----- storage -----------------------------------------------------------


@dataclass
class PreparedClip:
    """One prepared clip: encoded crops plus their landmarks (see module docstring)."""

    jpegs: list[bytes]  # F JPEG-encoded (S, S, 3) RGB crops
    landmarks: np.ndarray  # (F, 68, 2) float32, crop pixels
    boxes: np.ndarray  # (F, 3) float32 (x0, y0, size), source pixels
    frame_indices: np.ndarray  # (F,) int32
    image_size: int  # S

    def __len__(self) -> int:
        return len(self.jpegs)

    def image(self, index: int, size: int | None = None) -> np.ndarray:
        """Decode crop ``index`` as RGB uint8 ``(size, size, 3)`` (default: stored size).

        Resizing goes through the framing function (a crop of the whole
        stored square), so frames and :meth:`points` use one geometry.
        """
        with Image.open(io.BytesIO(self.jpegs[index])) as img:
            image = np.asarray(img.convert("RGB"), dtype=np.uint8)
        if size is None or size == self.image_size:
            return image
        return crop_image(image, self._whole(), size)

    def points(self, index: int, size: int | None = None) -> np.ndarray:
        """Landmarks of crop ``index`` ``(68, 2)`` float32, in pixels of a ``size``² crop (default: stored size)."""
        if size is None or size == self.image_size:
            return self.landmarks[index]
        return points_to_crop(self.landmarks[index], self._whole(), size)

    def _whole(self) -> CropBox:
        return CropBox(0.0, 0.0, float(self.image_size))


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB uint8 image as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def save_prepared_clip(
    path: str | Path,
    crops: list[np.ndarray],
    landmarks: np.ndarray,
    boxes: np.ndarray,
    frame_indices: np.ndarray,
    quality: int = 90,
) -> int:
    """Write crops ``(S, S, 3)`` and landmarks ``(F, 68, 2)`` to ``path`` (.npz); returns its size in bytes.

    Written to a temporary name and renamed, so an interrupted run never
    leaves a half-written clip behind.
    """
    if not crops:
        raise ValueError("a prepared clip needs at least one frame")
    size = int(crops[0].shape[0])
    encoded = [encode_jpeg(c, quality) for c in crops]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        jpeg_data=np.frombuffer(b"".join(encoded), dtype=np.uint8),
        jpeg_offsets=offsets,
        landmarks=np.asarray(landmarks, dtype=np.float16).reshape(len(crops), 68, 2),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(len(crops), 3),
        frame_indices=np.asarray(frame_indices, dtype=np.int32),
        image_size=np.int32(size),
        format_version=np.int32(FORMAT_VERSION),
    )
    os.replace(tmp, path)
    return path.stat().st_size


def load_prepared_clip(path: str | Path) -> PreparedClip:
    """Read a clip written by :func:`save_prepared_clip`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = npz["jpeg_data"].tobytes()
            offsets = npz["jpeg_offsets"]
            clip = PreparedClip(
                jpegs=[data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)],
                landmarks=npz["landmarks"].astype(np.float32),
                boxes=npz["boxes"].astype(np.float32),
                frame_indices=npz["frame_indices"].astype(np.int32),
                image_size=int(npz["image_size"]),
            )
    except (OSError, KeyError, ValueError) as err:
        raise TalkingHeadError(f"{path} is not a prepared clip ({err}); run `prepare` again") from err
    return clip


def read_manifest(root: str | Path) -> list[dict[str, Any]]:
    """All manifest entries of a prepared folder (kept and skipped), in file order."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise TalkingHeadError(
            f"{path} not found: run `python -m talking_head prepare --videos DIR --out {root}` first"
        )
    entries = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by an interrupted run; that clip is redone on resume
    return entries


def kept_entries(root: str | Path) -> list[dict[str, Any]]:
    """Manifest entries of kept clips, sorted by (identity, clip): entry i is video i (row W_i)."""
    latest = {e["source"]: e for e in read_manifest(root)}  # a clip prepared again: its newest line wins
    entries = [e for e in latest.values() if e.get("skipped") is None and e.get("file")]
    return sorted(entries, key=lambda e: (e["identity"], e["clip"]))


# ----- episodes ----------------------------------------------------------


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` → float ``(3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """Float ``(3, H, W)`` in [-1, 1] → RGB uint8 ``(H, W, 3)``."""
    array = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return array.permute(1, 2, 0).numpy()


class EpisodeDataset(torch.utils.data.Dataset):
    """Meta-learning episodes from a prepared folder: video i, K shots + 1 target.

    ``dataset[i]`` draws an episode of video i from a generator seeded with i;
    ``dataset[(i, seed)]`` uses ``seed`` (what :class:`EpisodeSampler` yields),
    so episodes are reproducible whatever the number of loader workers.

    Flip augmentation mirrors a whole episode at once (shots and target, image
    and landmarks with left/right indices swapped): the shots then still
    describe the person seen in the target.
    """

    def __init__(self, root: str | Path, k_shots: int = 8, image_size: int = 256, flip: bool = True) -> None:
        self.root = Path(root)
        self.k_shots = k_shots
        self.image_size = image_size
        self.flip = flip
        self.entries = kept_entries(self.root)
        if not self.entries:
            raise TalkingHeadError(
                f"{self.root} holds no usable clips: check {self.root / MANIFEST_NAME} for skip reasons"
            )
        self._clips: dict[int, PreparedClip] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def video_names(self) -> list[str]:
        """``identity/clip`` of each video, in index order (the rows of W)."""
        return [f"{e['identity']}/{e['clip']}" for e in self.entries]

    def clip(self, video_index: int) -> PreparedClip:
        """The prepared clip of video ``video_index`` (loaded once, then cached)."""
        if video_index not in self._clips:
            self._clips[video_index] = load_prepared_clip(self.root / self.entries[video_index]["file"])
        return self._clips[video_index]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        video_index, seed = (
            (int(key), int(key)) if isinstance(key, (int, np.integer)) else (int(key[0]), int(key[1]))
        )
        rng = np.random.default_rng(seed)
        clip = self.clip(video_index)
        frames = self._choose_frames(len(clip), rng)
        flip = self.flip and bool(rng.random() < 0.5)
        images, points, landmark_images = zip(*(self._frame(clip, f, flip) for f in frames))
        images_t = torch.stack([image_to_tensor(im) for im in images])  # (K + 1, 3, H, W)
        landmarks_t = torch.stack([image_to_tensor(lm) for lm in landmark_images])  # (K + 1, 3, H, W)
        points_t = torch.from_numpy(np.stack(points).astype(np.float32))  # (K + 1, 68, 2)
        return {
            "target_image": images_t[0],  # (3, H, W)
            "target_landmarks": landmarks_t[0],  # (3, H, W)
            "target_points": points_t[0],  # (68, 2) crop pixels (what a warp-guided G warps the shots to)
            "shot_images": images_t[1:],  # (K, 3, H, W)
            "shot_landmarks": landmarks_t[1:],  # (K, 3, H, W)
            "shot_points": points_t[1:],  # (K, 68, 2)
            "video_index": torch.tensor(video_index, dtype=torch.long),
            "flipped": torch.tensor(flip),
        }

    def _choose_frames(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Target first, then K shots; all distinct when the clip has K + 1 frames or more."""
        if num_frames >= self.k_shots + 1:
            return rng.choice(num_frames, self.k_shots + 1, replace=False)
        target = rng.integers(num_frames)
        others = np.delete(np.arange(num_frames), target) if num_frames > 1 else np.array([target])
        return np.concatenate([[target], rng.choice(others, self.k_shots, replace=True)])

    def _frame(self, clip: PreparedClip, index: int, flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crop, landmarks (68, 2) and rasterized landmarks of frame ``index``, mirrored when ``flip``."""
        image = clip.image(index, self.image_size)
        points = clip.points(index, self.image_size)
        if flip:
            image = image[:, ::-1]
            points = flip_landmarks(points, self.image_size)
        return image, points, rasterize_landmarks(points, self.image_size)


class EpisodeSampler(torch.utils.data.Sampler):
    """Endless stream of ``(video_index, episode_seed)`` for one rank.

    Each epoch is a permutation of the videos drawn from ``(seed, epoch)``,
    padded by wrapping to a multiple of ``world_size`` and dealt round-robin
    to the ranks, so ranks see disjoint videos within an epoch. ``start`` skips
    that many of this rank's items: resuming at step s with batch B uses
    ``start = s * B`` and yields exactly what an uninterrupted run would.
    """

    def __init__(
        self, num_videos: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> None:
        self.num_videos = num_videos
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.per_rank = -(-num_videos // world_size)  # ceil

    def _epoch(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_videos)
        padded = np.resize(order, self.per_rank * self.world_size)  # wraps around
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            videos = self._epoch(epoch)
            for position in range(offset, self.per_rank):
                global_position = (
                    epoch * self.per_rank * self.world_size + position * self.world_size + self.rank
                )
                episode_seed = int(np.random.SeedSequence([self.seed, global_position]).generate_state(1)[0])
                yield int(videos[position]), episode_seed
            epoch, offset = epoch + 1, 0
