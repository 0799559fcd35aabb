"""Streaming the frames of a video file as RGB ``uint8`` arrays ``(H, W, 3)`` out of an ffmpeg subprocess.

One frame at a time, so a clip is never held in memory as a whole (except
through :func:`read_video_frames`, which is meant for tests and short clips).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from talking_head.errors import CorruptVideoError, EmptyVideoError
from talking_head.media.frame_rate import frame_rate_indices
from talking_head.media.video import VideoInfo, probe_video


class VideoReader:
    """Stream the frames of a video file as RGB ``uint8`` arrays ``(H, W, 3)``.

    Use as a context manager; leaving the block (or breaking out of the loop
    and leaving it) stops the ffmpeg process::

        with VideoReader("clip.mp4", max_seconds=10) as reader:
            print(reader.info.fps, reader.info.num_frames)
            for frame in reader:
                ...

    The file is probed when the reader is created, so bad input raises at once
    (same errors as :func:`probe_video`). Frames are rotated as the file's
    rotation flag says and yielded exactly as decoded (a variable-rate clip is
    not resampled to ``info.fps``). Each iteration starts again at the first frame.

    ``max_fps``: a clip faster than this yields only the frames nearest to
    ``0, 1/max_fps, 2/max_fps, ...`` (:func:`talking_head.media.frame_rate.frame_rate_indices`),
    and ``info`` describes what is yielded (``fps = max_fps``, same duration).
    The others are still decoded, but nothing downstream sees them.
    """

    def __init__(
        self, path: str | os.PathLike, max_seconds: float | None = None, max_fps: float | None = None
    ) -> None:
        self.path = Path(path)
        self.max_seconds = max_seconds
        self.source_info: VideoInfo = probe_video(self.path, max_seconds=max_seconds)
        self._keep: np.ndarray | None = None  # source frame indices yielded; None = all
        self.info: VideoInfo = self.source_info
        if max_fps is not None and self.source_info.fps > max_fps:
            self._keep, fps = frame_rate_indices(self.source_info.num_frames, self.source_info.fps, max_fps)
            count = len(self._keep)
            self.info = VideoInfo(fps, count, self.source_info.size, count / fps, self.source_info.has_audio)
        self._generators: list[Iterator[bytes]] = []

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every ffmpeg process this reader started (safe to call twice)."""
        while self._generators:
            # Closing imageio-ffmpeg's generator terminates (and if needed kills) ffmpeg.
            self._generators.pop().close()

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        # passthrough: one output frame per decoded frame (no duplicates or drops to force a
        # constant rate), so the count matches info.num_frames.
        generator = imageio_ffmpeg.read_frames(
            str(self.path),
            output_params=["-map", "0:V:0", "-fps_mode", "passthrough"],
            input_params=["-nostdin"],
        )
        self._generators.append(generator)
        try:
            yield from self._frames(generator)
        finally:
            generator.close()
            if generator in self._generators:
                self._generators.remove(generator)

    def _frames(self, generator: Iterator) -> Iterator[np.ndarray]:
        keep = None if self._keep is None else iter(self._keep.tolist())
        wanted = None if keep is None else next(keep, None)
        try:
            meta = next(generator)
            width, height = meta["size"]
            for index, raw in enumerate(generator):
                if index >= self.source_info.num_frames:
                    return
                if keep is not None:
                    if index != wanted:
                        continue
                    wanted = next(keep, None)
                # frombuffer is read-only; callers expect an array they may draw on.
                yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
        except (OSError, RuntimeError) as error:
            raise CorruptVideoError(
                f"Decoding '{self.path.name}' failed ({_first_line(error)}). The file may be damaged; "
                "re-export it as MP4 (H.264) and try again."
            ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_video_frames(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
    """Read a whole (short) clip into memory: ``(frames (T, H, W, 3) uint8, fps)``.

    Meant for tests and small clips; use :class:`VideoReader` to stream long ones.
    """
    with VideoReader(path, max_seconds=max_seconds) as reader:
        frames = list(reader)
        fps = reader.info.fps
    if not frames:
        raise EmptyVideoError(f"No frame of '{Path(path).name}' could be decoded. Use another clip.")
    return np.stack(frames), fps
