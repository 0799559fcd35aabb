"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) for landmarks that arrive one frame at a time.

Offline driving smooths the whole track with a centred Gaussian
(:func:`talking_head.face.motion.smooth_landmarks`), which needs frames from
the future. Live, each frame must be smoothed as it comes, with as little lag
as possible. The One Euro filter is a first-order low-pass filter whose
cutoff rises with speed: at rest it removes the detector's jitter (cutoff
``min_cutoff`` Hz), and when the face moves fast the cutoff grows by
``beta`` Hz per unit of speed, so fast motion is followed with little lag.

Values are filtered per element against the time stamps given, so a dropped
camera frame (a longer step) is handled by the formula, not by guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """The filter's three parameters, in the units of the filtered values per second."""

    min_cutoff: float = 1.5  # Hz: the cutoff at rest (lower: less jitter, more lag at rest)
    beta: float = 0.05  # Hz per (unit / s): how fast the cutoff rises with speed
    derivative_cutoff: float = 1.0  # Hz: the cutoff of the speed estimate

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "derivative_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {value!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a number >= 0, got {self.beta!r}")


def smoothing_factor(cutoff: np.ndarray | float, elapsed: float) -> np.ndarray | float:
    """The exponential smoothing factor of a first-order low-pass filter at ``cutoff`` Hz over ``elapsed`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / elapsed)


class OneEuroFilter:
    """Filters arrays of one fixed shape, one sample at a time: ``filter(values, timestamp)``."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._value = self._speed = self._time = None

    def __call__(self, values: np.ndarray, timestamp: float) -> np.ndarray:
        """The filtered ``values`` at ``timestamp`` (seconds, increasing); the first sample passes unchanged."""
        values = np.asarray(values, dtype=np.float64)
        if self._value is None or self._time is None:
            self._value, self._speed, self._time = values.copy(), np.zeros_like(values), float(timestamp)
            return values.astype(np.float32)
        if values.shape != self._value.shape:
            raise ValueError(f"expected values of shape {self._value.shape}, got {values.shape}")
        elapsed = float(timestamp) - self._time
        if elapsed <= 0:  # the same instant again (or a clock step back): nothing new to smooth over
            return self._value.astype(np.float32)
        config = self.config
        speed = (values - self._value) / elapsed
        self._speed = self._speed + smoothing_factor(config.derivative_cutoff, elapsed) * (
            speed - self._speed
        )
        cutoff = config.min_cutoff + config.beta * np.abs(self._speed)
        self._value = self._value + smoothing_factor(cutoff, elapsed) * (values - self._value)
        self._time = float(timestamp)
        return self._value.astype(np.float32)
