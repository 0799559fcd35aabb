"""What the app serves, loaded once at start: the model, the limits and the landmark detector.

Without weights, :class:`AppWeights` carries a plain message saying what is
missing and how to fix it, so the page can say so instead of failing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from talking_head.animation.person import model_device
from talking_head.animation.pipeline import load_model, warm_up_rendering
from talking_head.errors import WeightsError
from talking_head.face.detection import LandmarkDetector
from talking_head.face.landmarks import get_detector
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import TASKS, precision_from_env, resolve_precision
from talking_head.nets.runtime import runtime_from_env
from talking_head.web.limits import AppLimits

logger = logging.getLogger(__name__)

ENV_WEIGHTS = "TALKING_HEAD_WEIGHTS"  # weights folder or Hub repo id the app loads at start
DEFAULT_WEIGHTS = "weights"  # used when ENV_WEIGHTS is not set


@dataclass
class AppWeights:
    """The model the app serves, or why there is none."""

    source: str  # folder or Hub repo id that was tried
    model: TalkingHeadModel | None  # None when nothing could be loaded
    error: str | None = None  # plain message for the page: what is missing and how to fix it

    @property
    def ok(self) -> bool:
        """A model is loaded."""
        return self.model is not None

    def require(self) -> TalkingHeadModel:
        """The model; ``WeightsError`` with the page's message when there is none."""
        if self.model is None:
            raise WeightsError(self.error or f"no model weights were loaded from {self.source}")
        return self.model

    def describe(self) -> str:
        """One line for the page: source, image size, device, e.g. ``weights/ (256 px, cpu)``."""
        if self.model is None:
            return f"no weights loaded ({self.source})"
        source = self.source
        if Path(source).is_dir() and not source.endswith("/"):
            source += "/"  # a folder, not a Hub repo id
        return f"{source} ({self.model.config.image_size} px, {model_device(self.model)})"


def weights_help(source: str, reason: str) -> str:
    """The message shown when weights cannot be loaded: what is missing and the ways to fix it."""
    return (
        f"No model weights could be loaded from '{source}': {reason}. "
        f"To fix it, set the environment variable {ENV_WEIGHTS} to a weights folder (config.json + "
        "embedder/generator/discriminator .safetensors) or to a Hugging Face repo id (org/name), "
        "or make weights with the training recipe (python -m talking_head train ..., then "
        f"python -m talking_head export RUN --out {DEFAULT_WEIGHTS}), and restart the app."
    )


def load_app_weights(
    source: str | None = None,
    device: str | torch.device | None = None,
    environ: Mapping[str, str] | None = None,
) -> AppWeights:
    """Load the app's model once: ``source``, else ``$TALKING_HEAD_WEIGHTS``, else ``weights/``.

    Never raises for missing or broken weights: the result then has
    ``model=None`` and ``error`` set, so the page can say so plainly.
    """
    environ = os.environ if environ is None else environ
    source = source or environ.get(ENV_WEIGHTS, "").strip() or DEFAULT_WEIGHTS
    try:
        model = load_model(source, device=device)
    except WeightsError as error:
        logger.warning("no weights loaded from %s: %s", source, error)
        return AppWeights(source, None, weights_help(source, str(error).rstrip(".")))
    logger.info("loaded weights from %s (%d px) on %s", source, model.config.image_size, model_device(model))
    # Fine-tuning and rendering read $TALKING_HEAD_PRECISION themselves; resolving it here fails a bad
    # value at start and makes auto measure (and log its choice, once each) before the first click.
    for task in TASKS:
        precision = resolve_precision(precision_from_env(environ), model_device(model), task=task)
        if precision.policy != "auto":  # auto logs its own choice and why
            logger.info("precision for %s: %s (%s)", task, precision.name, precision.reason)
    # $TALKING_HEAD_RUNTIME on a CPU: the ONNX graph (exported once into the cache), auto's choice and
    # G's first call happen here, not in the first click.
    if model_device(model).type == "cpu":
        policies = {"precision": precision_from_env(environ), "runtime": runtime_from_env(environ)}
        runtime = warm_up_rendering(model, **policies)
        logger.info("rendering with %s (%s)", runtime.name, runtime.reason)
    return AppWeights(source, model)


@dataclass
class AppState:
    """What the page serves, loaded once at start."""

    weights: AppWeights  # the model, or why there is none
    limits: AppLimits  # upload/photo/seconds/size limits
    detector: LandmarkDetector  # the landmark backend used for photos and driving clips

    def initial_steps(self) -> int:
        """The fine-tuning slider's start value on the model's device (the CPU without a model)."""
        return self.limits.initial_steps(model_device(self.weights.model) if self.weights.ok else "cpu")


def landmark_device(environ: Mapping[str, str] | None = None) -> str | None:
    """ZeroGPU gives CUDA only inside the GPU function; driving clips are tracked outside it, on the CPU."""
    environ = os.environ if environ is None else environ
    return "cpu" if environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true") else None


def load_app_state() -> AppState:
    """The limits (``$TALKING_HEAD_MAX_*``), the weights (``$TALKING_HEAD_WEIGHTS``) and the landmark detector."""
    limits = AppLimits.from_env()
    weights = load_app_weights()
    return AppState(weights, limits, get_detector(device=landmark_device()))
