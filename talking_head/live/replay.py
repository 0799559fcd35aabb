"""Drive a live session with a recorded clip at the clip's own frame rate, as a camera would.

A camera does not wait for the renderer: it delivers a frame every
``1 / fps`` seconds whether or not the last one was used. :func:`replay`
plays the frames on that schedule from a thread into a one-frame slot; the
renderer takes the newest frame each time it is free, so frames that arrive
while it is busy replace each other and count as dropped. Each frame is sent
as JPEG and the result encoded as JPEG again, as the page's transport does,
so the server's decoding and encoding are inside the measured latency
(camera frame in → rendered frame out).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from talking_head.live.session import LiveFrame

JPEG_QUALITY = 85


@dataclass(frozen=True)
class ReplayReport:
    """What a replay measured."""

    offered: int  # frames the camera delivered
    rendered: int  # frames rendered
    dropped: int  # frames replaced in the slot before the renderer took them
    held: int  # frames taken but not rendered (no face)
    seconds: float  # from the first frame's arrival to the last result
    latencies_ms: np.ndarray  # per rendered frame: arrival → encoded result

    @property
    def fps(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies_ms, percentile)) if len(self.latencies_ms) else float("nan")

    def describe(self) -> str:
        return (
            f"{self.fps:.1f} rendered frames/s over {self.seconds:.1f} s; {self.offered} frames offered, "
            f"{self.rendered} rendered, {self.dropped} dropped, {self.held} held (no face); latency median "
            f"{self.latency_ms(50):.0f} ms, p90 {self.latency_ms(90):.0f} ms, p99 {self.latency_ms(99):.0f} ms"
        )


def encode_jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("a frame could not be encoded as JPEG")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class _Slot:
    """The newest camera frame, replaced by the next one if the renderer has not taken it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: tuple[int, bytes, float] | None = None
        self.dropped = 0
        self.closed = False

    def put(self, item: tuple[int, bytes, float]) -> None:
        with self._condition:
            self.dropped += self._item is not None
            self._item = item
            self._condition.notify()

    def close(self) -> None:
        with self._condition:
            self.closed = True
            self._condition.notify()

    def take(self) -> tuple[int, bytes, float] | None:
        with self._condition:
            while self._item is None and not self.closed:
                self._condition.wait()
            item, self._item = self._item, None
            return item


def replay(
    step: Callable[[np.ndarray, float], LiveFrame],
    frames: Sequence[np.ndarray],
    fps: float,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayReport:
    """Play ``frames`` (RGB) at ``fps`` into ``step(frame, arrival_time)`` (e.g. :meth:`LiveSession.step`)."""
    if fps <= 0 or not np.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    encoded = [encode_jpeg(frame) for frame in frames]
    slot = _Slot()
    start = clock() + 0.05

    def camera() -> None:
        for index, data in enumerate(encoded):
            due = start + index / fps
            while (wait := due - clock()) > 0:
                time.sleep(wait)
            slot.put((index, data, clock()))
        slot.close()

    thread = threading.Thread(target=camera, name="talking-head-replay-camera", daemon=True)
    thread.start()
    latencies, rendered, held, first, last = [], 0, 0, None, start
    while (item := slot.take()) is not None:
        _, data, arrived = item
        first = arrived if first is None else first
        result = step(decode_jpeg(data), arrived)
        encode_jpeg(result.image)
        last = clock()
        if result.rendered:
            rendered += 1
            latencies.append((last - arrived) * 1000)
        else:
            held += 1
    thread.join()
    seconds = last - (first if first is not None else start)
    return ReplayReport(len(frames), rendered, slot.dropped, held, seconds, np.asarray(latencies))
