"""A person to animate: photos → per-photo report, crops, landmarks and ê.

``embed_person`` runs the same steps for every photo: detect the 68 landmarks,
frame the face with the ONE crop function (``framing.crop_box_from_landmarks``),
crop to ``config.image_size``, rasterize the landmarks in crop coordinates, and
average E over the usable shots (ê = mean_t E(x(t), y(t)), DESIGN §1). Each
photo gets a :class:`PhotoReport` so a UI can say which photo is unusable and why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from talking_head.errors import NoFaceError
from talking_head.face.detection import LandmarkDetector
from talking_head.face.framing import CropBox, crop_box_from_landmarks, crop_image, points_to_crop
from talking_head.face.landmarks import get_detector
from talking_head.face.motion import estimate_yaw
from talking_head.face.raster import rasterize_landmarks_batch
from talking_head.media.images import ImageSource, load_image
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.tensors import images_to_tensor

# Usability thresholds. A face smaller than this (landmark box side, photo
# pixels) is upscaled so much that E sees mostly blur.
MIN_FACE_SIZE = 48.0
# Beyond this the 2D landmarks of the hidden half are guesses and the
# rasterized sketch no longer looks like the training data's.
MAX_ABS_YAW = 60.0
# Variance of the Laplacian of the gray face crop at 256×256 below which the
# photo is called blurry. Calibrated on the project's research photo set (202 stills, paintings and
# statues included; docs/DATA.md): sharp photos score in the hundreds, heavy blur below 10.
MIN_BLUR_SCORE = 10.0
_BLUR_SIZE = 256

# Largest photo side we process; bigger photos are downscaled first (detection
# time grows with the pixel count, and crops are at most image_size anyway).
MAX_PHOTO_SIDE = 2048


@dataclass(frozen=True)
class PhotoReport:
    """What was found in one photo and whether it can be used."""

    name: str  # file name or "photo N"
    face_found: bool  # a face was detected
    num_faces: int  # faces detected (the largest one is used)
    box_size: float  # longer side of the landmarks' bounding box in photo pixels (0 when none)
    yaw: float  # rough head yaw in degrees from landmark asymmetry (0 frontal)
    blur: float  # variance of the Laplacian of the gray face crop (higher = sharper)
    usable: bool  # the photo is used for the embedding
    reason: str  # why it is not usable, or a remark ("" when fine)


@dataclass
class Person:
    """An embedded (and optionally fine-tuned) person, ready to animate.

    ``generator`` is ``None`` for the feed-forward use (the base model's G with
    ψ̂ = P·ê); after :func:`talking_head.animation.finetune.finetune_person` it holds the
    person's own copy G' and ``adain_params`` is ψ'.
    """

    embedding: torch.Tensor  # ê, (N,)
    adain_params: torch.Tensor  # ψ̂ = P·ê or, after fine-tuning, ψ', (n_adain,)
    shots: np.ndarray  # usable crops x(t), (T, S, S, 3) uint8
    shot_landmarks: np.ndarray  # their landmarks in crop pixels, (T, 68, 2)
    reports: list[PhotoReport]  # one per input photo, in input order
    source_image: np.ndarray  # the first usable photo (for paste-back), (H, W, 3) uint8
    source_box: CropBox  # its crop box in photo pixels
    generator: nn.Module | None = None  # G' after fine-tuning; None = the base model's G
    finetune_steps: int = 0  # fine-tuning steps run so far
    finetune_losses: list[dict[str, float]] = field(default_factory=list)  # losses per step
    finetune_notice: str = ""  # what went wrong in fine-tuning (stopped early, skipped steps), "" when nothing

    @property
    def source_landmarks(self) -> np.ndarray:
        """Landmarks of the first usable photo in crop pixels, (68, 2): the shape kept in relative mode."""
        return self.shot_landmarks[0]

    def with_finetuned(
        self,
        generator: nn.Module,
        adain_params: torch.Tensor,
        steps: int,
        losses: list[dict[str, float]],
        notice: str = "",
    ) -> Person:
        """A copy holding a fine-tuned G' and ψ' (the crops and reports are shared)."""
        return replace(
            self,
            generator=generator,
            adain_params=adain_params,
            finetune_steps=self.finetune_steps + steps,
            finetune_losses=self.finetune_losses + losses,
            finetune_notice=notice,
        )


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` in eval mode and restore its flags afterwards.

    Spectral norm updates its power-iteration buffers on every forward in
    training mode; eval mode keeps a loaded base model bit-identical.
    """
    flags = [m.training for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, flag in zip(module.modules(), flags):
            m.training = flag


def model_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a parameter-less module)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def landmark_images(points: np.ndarray, size: int) -> np.ndarray:
    """Rasterize a ``(T, 68, 2)`` batch of crop landmarks → ``(T, size, size, 3)`` uint8 (the y given to G)."""
    return rasterize_landmarks_batch(points, size)


def blur_score(image: np.ndarray, box: CropBox) -> float:
    """Variance of the Laplacian of the gray face crop at 256×256 (higher = sharper).

    Measured at a fixed size, independent of the model's image size, so the
    threshold means the same for every preset.
    """
    gray = cv2.cvtColor(crop_image(image, box, _BLUR_SIZE), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _unusable_reason(box_size: float, yaw: float, blur: float) -> str:
    if box_size < MIN_FACE_SIZE:
        return f"the face is too small ({box_size:.0f} px); use a photo where the face is at least {MIN_FACE_SIZE:.0f} px wide"
    if abs(yaw) > MAX_ABS_YAW:
        return f"the face is turned too far to the side (about {abs(yaw):.0f}°); use a more frontal photo"
    if blur < MIN_BLUR_SCORE:
        return f"the photo is too blurry (sharpness {blur:.1f} < {MIN_BLUR_SCORE:.0f}); use a sharper photo"
    return ""


@dataclass
class _Shot:
    image: np.ndarray  # the whole photo
    box: CropBox
    crop: np.ndarray  # (S, S, 3)
    points: np.ndarray  # crop pixels (68, 2)


def face_position(box: np.ndarray, width: int) -> str:
    """Where a face box sits across a photo ``width`` pixels wide: "on the left", "in the middle", "on the right"."""
    center = (float(box[0]) + float(box[2])) / 2 / max(1, width)
    return "on the left" if center < 1 / 3 else "on the right" if center > 2 / 3 else "in the middle"


def analyze_photo(
    photo: ImageSource, name: str, detector: LandmarkDetector, image_size: int
) -> tuple[PhotoReport, _Shot | None]:
    """Detect, frame and judge one photo; the shot is ``None`` when no face was found."""
    image = load_image(photo, max_side=MAX_PHOTO_SIDE)
    try:
        face = detector.detect(image)
    except NoFaceError:
        report = PhotoReport(
            name,
            False,
            0,
            0.0,
            0.0,
            0.0,
            False,
            "no face was found; use a photo with one clearly visible face",
        )
        return report, None
    box = crop_box_from_landmarks(face.points)
    crop = crop_image(image, box, image_size)
    points = points_to_crop(face.points, box, image_size).astype(np.float32)
    # Side of the landmarks' bounding box: the same measure whichever backend ran.
    box_size = float(np.ptp(face.points, axis=0).max())
    yaw = float(estimate_yaw(face.points))
    blur = blur_score(image, box)
    reason = _unusable_reason(box_size, yaw, blur)
    usable = not reason
    if usable and face.num_faces > 1:  # a remark, still usable
        where = face_position(face.box, image.shape[1])
        reason = f"{face.num_faces} faces found; the largest one ({where}) is used"
    report = PhotoReport(name, True, int(face.num_faces), box_size, yaw, blur, usable, reason)
    return report, _Shot(image, box, crop, points)


def _photo_name(photo: ImageSource, index: int) -> str:
    if isinstance(photo, (str, Path)):
        return Path(photo).name
    return f"photo {index + 1}"


def embed_person(
    model: TalkingHeadModel,
    photos: Sequence[ImageSource],
    detector: LandmarkDetector | None = None,
    names: Sequence[str] | None = None,
) -> Person:
    """Embed a person from 1..T photos: detect, frame, embed with E, average.

    Unusable photos (no face, too small, turned away, blurry) are skipped and
    reported in ``Person.reports``. The base model is only read (eval mode).

    Raises:
        NoFaceError: no photo is usable; the message names each photo and why.
    """
    if not photos:
        raise NoFaceError("no photos were given; add at least one photo of the person's face")
    detector = detector or get_detector()
    size = model.config.image_size
    names = list(names) if names is not None else [_photo_name(p, i) for i, p in enumerate(photos)]
    reports, shots = [], []
    for photo, name in zip(photos, names):
        report, shot = analyze_photo(photo, name, detector, size)
        reports.append(report)
        if report.usable and shot is not None:
            shots.append(shot)
    if not shots:
        details = "; ".join(f"{r.name}: {r.reason}" for r in reports)
        raise NoFaceError(f"none of the photos can be used ({details})")
    crops = np.stack([s.crop for s in shots])  # (T, S, S, 3)
    points = np.stack([s.points for s in shots])  # (T, 68, 2)
    embedding, adain_params = _embed_shots(model, crops, points)
    return Person(
        embedding=embedding,
        adain_params=adain_params,
        shots=crops,
        shot_landmarks=points,
        reports=reports,
        source_image=shots[0].image,
        source_box=shots[0].box,
    )


@torch.inference_mode()
def _embed_shots(
    model: TalkingHeadModel, crops: np.ndarray, points: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """ê = mean_t E(x_t, y_t) and ψ̂ = P·ê, computed without touching the base model's state."""
    device = model_device(model)
    x = images_to_tensor(crops, device)  # (T, 3, S, S)
    y = images_to_tensor(landmark_images(points, model.config.image_size), device)
    with eval_mode(model):
        embedding = model.embedder(x, y).mean(0)  # (N,)
        adain_params = model.generator.project(embedding[None])[0]  # (n_adain,)
    return embedding.clone(), adain_params.clone()
