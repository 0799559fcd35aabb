"""A live session: camera frames in, the photo following them out, one frame at a time.

Per frame (:meth:`LiveSession.step`):

1. **Landmarks by tracking** (:class:`LiveTracker`): the detector searches only
   near the previous frame's face box (dlib: a few ms), with a full-frame
   search when the hinted search loses the face and every ``redetect_every``
   frames, as the clip tracker does (:mod:`talking_head.face.tracking`).
2. **Framing and smoothing**: the driver's crop box (the ONE framing function)
   and the landmarks in that crop each pass a One Euro filter
   (:mod:`talking_head.live.filters`): little jitter at rest, little lag in motion.
3. **Relative motion** against the neutral pose, the first frame with a face
   (or the frame after :meth:`LiveSession.reset_neutral`), then the optional
   motion controls (:mod:`talking_head.face.motion_controls`).
4. **Warp + G** at batch 1 (:class:`talking_head.live.render.FrameRenderer`).

A frame without a face holds the last rendered frame (the photo's own face
before the first) and says so in :attr:`LiveFrame.status`. A session ends at
its time limit (``limit_s`` after its first frame): later frames are not
rendered and the last frame is held. A camera that pauses for more than
:data:`RESTART_GAP_S` starts a new session with its next frame.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from talking_head.animation.compositing import NativeCompositor
from talking_head.animation.person import Person
from talking_head.animation.pipeline import mark_synthetic
from talking_head.errors import NoFaceError
from talking_head.face.control_masks import rendered_regions
from talking_head.face.detection import FaceLandmarks, LandmarkDetector
from talking_head.face.framing import CropBox, crop_box_from_landmarks, points_to_crop
from talking_head.face.motion import retarget_relative
from talking_head.face.motion_controls import MotionControls, apply_motion_controls
from talking_head.face.tracking import DEFAULT_REDETECT_EVERY, is_plausible
from talking_head.live.filters import OneEuroConfig, OneEuroFilter
from talking_head.live.render import FrameRenderer

logger = logging.getLogger(__name__)

DEFAULT_LIMIT_S = 60.0  # a live session's length, seconds (the app's TALKING_HEAD_LIVE_SECONDS)
# Filters: the crop box moves the whole face, so it is held steadier than the landmarks inside it.
BOX_FILTER = OneEuroConfig(min_cutoff=1.0, beta=0.02)  # box centre and side in camera pixels
POINT_FILTER = OneEuroConfig(min_cutoff=1.0, beta=0.05)  # landmarks in crop pixels
STATS_WINDOW = 50  # frames the shown frame rate and latency are measured over
LOG_EVERY_S = 10.0  # seconds between the log lines of a running session
# A pause this long between camera frames means the camera was stopped: the next frame starts a new
# session (time limit, neutral pose, filters), as when the visitor presses Record again.
RESTART_GAP_S = 2.0


class LiveTracker:
    """Landmarks of a stream of frames, searching near the last face (see the module docstring)."""

    def __init__(self, detector: LandmarkDetector, redetect_every: int = DEFAULT_REDETECT_EVERY) -> None:
        self.detector = detector
        self.redetect_every = redetect_every
        self._box: np.ndarray | None = None
        self._since_full = 0

    def reset(self) -> None:
        self._box, self._since_full = None, 0

    def _detect(self, frame: np.ndarray, hint: np.ndarray | None) -> FaceLandmarks | None:
        try:
            face = self.detector.detect(frame, box_hint=hint)
        except NoFaceError:
            return None
        if hint is not None and not is_plausible(face, hint):
            return None
        return face

    def __call__(self, frame: np.ndarray) -> FaceLandmarks | None:
        """The face in ``frame``, or ``None`` when there is none (the next frame then searches all of it)."""
        hint = self._box if self._box is not None and self._since_full < self.redetect_every else None
        face = self._detect(frame, hint)
        if face is None and hint is not None:
            face, hint = self._detect(frame, None), None
        self._since_full = self._since_full + 1 if hint is not None else 0
        self._box = face.box if face is not None else None
        return face


@dataclass(frozen=True)
class LiveFrame:
    """What one camera frame gave."""

    image: np.ndarray  # the frame to show (S, S, 3) uint8: rendered, or the last one held
    status: str  # one line for the page: frame rate and latency, or why the frame is held
    rendered: bool  # a new frame was rendered (False: held)
    face_found: bool  # the camera frame had a face
    ended: bool = False  # the session is past its time limit
    points: np.ndarray | None = None  # the landmarks G was given (68, 2) crop pixels, when rendered


@dataclass
class LiveStats:
    """Frame rate and server latency over the last :data:`STATS_WINDOW` frames."""

    rendered: int = 0
    held: int = 0
    finished: collections.deque = field(default_factory=lambda: collections.deque(maxlen=STATS_WINDOW))
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=STATS_WINDOW))

    def add(self, finished_at: float, latency_s: float) -> None:
        self.rendered += 1
        self.finished.append(finished_at)
        self.latencies.append(latency_s)

    @property
    def fps(self) -> float:
        """Rendered frames per second over the window (0 before two frames)."""
        if len(self.finished) < 2 or self.finished[-1] <= self.finished[0]:
            return 0.0
        return (len(self.finished) - 1) / (self.finished[-1] - self.finished[0])

    @property
    def median_latency_ms(self) -> float:
        return float(np.median(self.latencies)) * 1000 if self.latencies else 0.0

    def describe(self) -> str:
        return f"{self.fps:.1f} frames/s, {self.median_latency_ms:.0f} ms a frame on the server (median)"


class LiveSession:
    """One person driven by one camera; :meth:`step` per camera frame."""

    def __init__(
        self,
        renderer: FrameRenderer,
        person: Person,
        detector: LandmarkDetector,
        controls: MotionControls | None = None,
        limit_s: float = DEFAULT_LIMIT_S,
        watermark: bool = True,
        clock: Callable[[], float] = time.monotonic,
        compositor: NativeCompositor | None = None,
    ) -> None:
        self.renderer = renderer
        self.compositor = compositor  # None: G's crop; else the whole photo (only the head moving)
        self.source = np.asarray(person.source_landmarks, dtype=np.float32)
        self.tracker = LiveTracker(detector)
        self.controls = controls
        self.limit_s = limit_s
        self.watermark = watermark
        self.clock = clock
        self.stats = LiveStats()
        self.started: float | None = None
        self._box_filter, self._point_filter = OneEuroFilter(BOX_FILTER), OneEuroFilter(POINT_FILTER)
        self._neutral: np.ndarray | None = None
        first = person.shots[0] if compositor is None else compositor.still
        self._last = self._decorate(np.ascontiguousarray(first))
        self._logged = 0.0
        self._arrived: float | None = None

    def restart(self) -> None:
        """A new session: the time limit, the neutral pose, the filters and the tracker start again."""
        self.started, self._neutral, self.stats = None, None, LiveStats()
        self._box_filter.reset()
        self._point_filter.reset()
        self.tracker.reset()

    @property
    def last_image(self) -> np.ndarray:
        """The frame shown last (the photo's own face before the first render)."""
        return self._last

    def reset_neutral(self) -> None:
        """The next frame with a face becomes the neutral pose the motion is measured from."""
        self._neutral = None

    def seconds_left(self, now: float | None = None) -> float:
        if self.started is None:
            return self.limit_s
        return max(0.0, self.limit_s - ((self.clock() if now is None else now) - self.started))

    def _decorate(self, image: np.ndarray) -> np.ndarray:
        return mark_synthetic(image) if self.watermark else image

    def _held(self, status: str, face_found: bool, ended: bool = False) -> LiveFrame:
        self.stats.held += 1
        return LiveFrame(self._last, status, rendered=False, face_found=face_found, ended=ended)

    def driving_points(self, face: FaceLandmarks, timestamp: float) -> np.ndarray:
        """The driver's smoothed landmarks in its smoothed crop, crop pixels ``(68, 2)``."""
        box = crop_box_from_landmarks(face.points)
        centre_x, centre_y = box.center
        smooth = self._box_filter(np.array([centre_x, centre_y, box.size]), timestamp)
        side = max(float(smooth[2]), 1.0)
        box = CropBox(float(smooth[0]) - side / 2, float(smooth[1]) - side / 2, side)
        return self._point_filter(points_to_crop(face.points, box, self.renderer.size), timestamp)

    def target_points(self, driving: np.ndarray) -> np.ndarray:
        """Landmarks for G: the photo's plus the driver's motion since the neutral pose, under the controls."""
        if self._neutral is None:
            self._neutral = driving.copy()
        target = retarget_relative(self.source, np.stack([self._neutral, driving]), reference="first")[1:]
        if self.controls is not None:
            target = apply_motion_controls(self.source, target, self.controls)
        return target[0]

    def step(self, frame: np.ndarray, timestamp: float | None = None) -> LiveFrame:
        """Render the person for one RGB camera frame ``(H, W, 3)`` uint8, taken at ``timestamp`` (``clock``)."""
        arrived = self.clock() if timestamp is None else timestamp
        if self._arrived is not None and arrived - self._arrived > RESTART_GAP_S:
            self.restart()
        self._arrived = arrived
        if self.started is None:
            self.started = arrived
        if self.seconds_left(arrived) <= 0:
            ended = (
                f"Live session ended at its {self.limit_s:g} s limit. Stop the camera, then start it again."
            )
            return self._held(ended, face_found=False, ended=True)
        face = self.tracker(frame)
        if face is None:
            return self._held(
                "No face in the camera: holding the last frame. Face the camera.", face_found=False
            )
        points = self.target_points(self.driving_points(face, arrived))
        self._last = self._decorate(self._render(points))
        done = self.clock()
        self.stats.add(done, done - arrived)
        self._log(done)
        status = f"Live: {self.stats.describe()}; {self.seconds_left(done):.0f} s left"
        return LiveFrame(self._last, status, rendered=True, face_found=True, points=points)

    def _render(self, points: np.ndarray) -> np.ndarray:
        """G's crop for ``points``, or with a compositor the whole photo with G's correction in it."""
        regions = rendered_regions(self.controls)
        if self.compositor is None:
            return self.renderer(points, regions)
        result, warp = self.renderer.render(points, regions)
        compositor = self.compositor
        warps = None if warp is None or not getattr(compositor, "given_warps", False) else warp[None]
        return compositor(result, points, compositor.fields(points[None], warps)[0])

    def _log(self, now: float) -> None:
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            stats = self.stats
            logger.info(
                "live session: %s (%d rendered, %d held)", stats.describe(), stats.rendered, stats.held
            )
