"""Writing RGB ``uint8`` frames to an H.264 ``yuv420p`` MP4 with ``+faststart``, on ffmpeg.

Three parts: :class:`VideoWriter` opens the output (checks its name, folder
and audio source) and checks each frame; :class:`_Encoder` is pass 1, the
ffmpeg process that encodes the raw frames written to its stdin; :func:`_mux_audio`
is pass 2, which adds another file's audio as AAC, cut to the video's length.
Failures raise :class:`talking_head.errors.VideoWriteError` with ffmpeg's own
last lines; a failed or interrupted write never leaves a broken file at the
output path.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from talking_head.errors import VideoWriteError
from talking_head.media.video import ffmpeg_exe, has_audio_stream

# Time given to ffmpeg to flush its encoder and move the index to the front on close.
WRITER_CLOSE_TIMEOUT_S = 300.0
# x264 speed/size trade-off; "medium" is x264's own default.
X264_PRESET = "medium"
AUDIO_BITRATE = "128k"
# Container suffixes VideoWriter writes (H.264 in an ISO base media file with +faststart).
WRITABLE_SUFFIXES = (".mp4", ".m4v", ".mov")


def _quality_to_crf(quality: float) -> int:
    """Map quality 0 (worst) … 10 (best) to x264's CRF 51 … 0."""
    if not 0 <= quality <= 10:
        raise ValueError(f"quality must be between 0 and 10, got {quality}")
    return int(round(51 * (1 - quality / 10)))


def _even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad a frame with an odd width or height by repeating its last column/row.

    yuv420p stores colour at half resolution, so H.264 in yuv420p needs even
    sizes; repeating the edge keeps every input pixel and adds no visible border.
    """
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def check_output_suffix(path: str | os.PathLike) -> Path:
    """Refuse an output file name that is not an MP4/MOV (before any work is done for it)."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise VideoWriteError(
            f"Cannot write '{path.name}': videos are written as MP4 (H.264), so the name must end in "
            f"{', '.join(WRITABLE_SUFFIXES)}, not '{path.suffix or '(no extension)'}'. Use e.g. '{path.stem or 'out'}.mp4'."
        )
    return path


def _final_options(metadata: dict[str, str]) -> list[str]:
    """Options of the pass that writes the final file: ``+faststart`` and the container tags."""
    cmd = ["-movflags", "+faststart"]
    for key, value in metadata.items():
        cmd += ["-metadata", f"{key}={value}"]
    return cmd


# ----------------------------------------------------------------------------
# Pass 1: encoding.


class _Encoder:
    """An ffmpeg process encoding raw RGB frames from its stdin (pass 1); its messages go to a file."""

    def __init__(self, command: list[str], name: str) -> None:
        self.name = name  # the output's file name, for messages
        # stderr goes to a file, not a pipe: a full pipe nobody reads would block ffmpeg.
        self._stderr: IO[bytes] | None = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except BaseException:
            self.close_log()
            raise

    def feed(self, data: memoryview) -> None:
        """Write one frame's bytes to ffmpeg (``OSError`` when it has exited)."""
        assert self._process.stdin is not None
        self._process.stdin.write(data)

    def stop(self, timeout: float) -> int | None:
        """Close ffmpeg's input and wait for it to finish; kill it after ``timeout`` seconds."""
        process = self._process
        try:
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()
        except OSError:
            pass  # ffmpeg already gone; its exit code tells what happened
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise VideoWriteError(
                f"ffmpeg did not finish writing '{self.name}' within {timeout:.0f} s and was stopped."
            ) from None

    def kill(self) -> None:
        """Stop ffmpeg at once if it is still running."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def failure_message(self, returncode: int | None) -> str:
        """The error for a failed pass 1: the exit code and ffmpeg's last three lines."""
        output = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            output = self._stderr.read().decode("utf-8", errors="replace").strip()
        tail = " | ".join(output.splitlines()[-3:]) or "no message"
        return (
            f"ffmpeg failed writing '{self.name}' (exit code {returncode}): {tail}. "
            "Check free disk space and write permission for the output folder."
        )

    def close_log(self) -> None:
        """Delete ffmpeg's message file (safe to call twice)."""
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


# ----------------------------------------------------------------------------
# Pass 2: muxing the audio.


def _audio_command(
    video_only: Path,
    audio_from: Path,
    audio_max_seconds: float | None,
    duration: float,
    metadata: dict[str, str],
    out: Path,
) -> list[str]:
    """Pass 2: add the audio to the finished video, cut/padded to exactly its duration.

    A second pass (the video is stream-copied, so it costs little) gives an
    exact audio length: with frames streamed on stdin, ffmpeg's ``-shortest``
    overshoots by up to ~1 s of buffered audio.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-i", str(video_only)]
    if audio_max_seconds is not None:
        cmd += ["-t", f"{audio_max_seconds:.6f}"]  # input option: read only this much audio
    cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
    cmd += ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-af", "apad", "-t", f"{duration:.6f}"]
    return cmd + _final_options(metadata) + [str(out)]


def _mux_audio(command: list[str], audio_from: Path, name: str) -> None:
    """Run pass 2; ``VideoWriteError`` naming the audio source and the output ``name`` when it fails."""
    try:
        result = subprocess.run(command, capture_output=True, timeout=WRITER_CLOSE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise VideoWriteError(
            f"ffmpeg did not finish adding audio to '{name}' within {WRITER_CLOSE_TIMEOUT_S:.0f} s."
        ) from error
    if result.returncode != 0:
        tail = " | ".join(result.stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:])
        raise VideoWriteError(
            f"ffmpeg failed adding the audio of '{audio_from}' to '{name}' "
            f"(exit code {result.returncode}): {tail or 'no message'}. Try another audio source."
        )


# ----------------------------------------------------------------------------
# The writer.


class VideoWriter:
    """Write RGB ``uint8`` frames to an H.264 MP4, optionally with audio from another file.

    Usage::

        with VideoWriter("out.mp4", fps=25, audio_from="driver.mp4",
                         metadata={"comment": "synthetic video: generated by talking-head"}) as writer:
            for frame in frames:
                writer.write(frame)

    Args:
        path: output file (``.mp4``); its folder must exist.
        fps: frame rate of the output.
        audio_from: any media file whose first audio stream becomes the output's audio.
        audio_max_seconds: use at most this many seconds of that audio.
        metadata: container tags, e.g. ``pipeline.SYNTHETIC_METADATA``.
        quality: 0 (worst) … 10 (best), mapped to x264 CRF = round(51 · (1 − quality / 10));
            the default 7 gives CRF 15, visually near-lossless.

    Details:
        - The first frame fixes the size; later frames must match it. Odd
          widths/heights are padded to even by repeating the last column/row
          (``yuv420p`` needs even sizes), so the file may be 1 px wider/taller.
        - Video: ``libx264``, ``yuv420p``, ``-movflags +faststart``.
        - Audio: when ``audio_from`` has an audio stream, its first one is
          encoded as AAC, padded with silence if short and cut to the video's
          exact length (in a second, stream-copy pass on close);
          ``audio_max_seconds`` reads only that many seconds of it (the rest
          is silence). Without audio there, the output has no audio stream.
        - ``metadata``: each item becomes ``-metadata key=value``; MP4 keeps the
          standard keys (``title``, ``comment``, ``description``, ``artist``, ...).
        - ffmpeg writes to a hidden temporary file next to ``path`` that is
          renamed to ``path`` only on success, so a failed or interrupted write
          never leaves a broken video at ``path``.

    Raises:
        VideoWriteError: the folder is missing or ffmpeg fails (the message
            includes ffmpeg's own last lines).
        VideoReadError: ``audio_from`` is given but cannot be read.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        audio_max_seconds: float | None = None,
        metadata: dict[str, str] | None = None,
        quality: float = 7.0,
    ) -> None:
        self.path = Path(path)
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        check_output_suffix(self.path)
        if not self.path.parent.is_dir():
            raise VideoWriteError(
                f"Cannot write '{self.path}': folder '{self.path.parent}' does not exist. Create it first."
            )
        self.fps = float(fps)
        self.metadata = dict(metadata or {})
        self.crf = _quality_to_crf(quality)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_max_seconds = audio_max_seconds
        # Only files that really carry audio get an audio input: mapping a missing stream fails.
        self.has_audio = self.audio_from is not None and has_audio_stream(self.audio_from)
        self.size: tuple[int, int] | None = None  # (W, H) of the frames as given
        self.num_frames = 0
        self._encoder: _Encoder | None = None  # started by the first frame
        self._closed = False
        # Hidden work files next to the output; ffmpeg picks the container from the suffix.
        token = uuid.uuid4().hex[:8]
        self._temp_path = self.path.with_name(f".{self.path.stem}.{token}.part{self.path.suffix}")
        self._video_only_path = self.path.with_name(f".{self.path.stem}.{token}.video{self.path.suffix}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _video_command(self, width: int, height: int) -> list[str]:
        """Pass 1: raw RGB frames on stdin → H.264 video (the final file when there is no audio)."""
        fps = Fraction(self.fps).limit_denominator(1001)
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
        cmd += ["-an", "-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(self.crf)]
        cmd += ["-pix_fmt", "yuv420p"]
        if self.has_audio:
            return cmd + [str(self._video_only_path)]
        return cmd + _final_options(self.metadata) + [str(self._temp_path)]

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB ``uint8`` frame ``(H, W, 3)``."""
        if self._closed:
            raise ValueError(f"VideoWriter for '{self.path.name}' is already closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
            self._encoder = _Encoder(
                self._video_command(width + width % 2, height + height % 2), self.path.name
            )
        elif (width, height) != self.size:
            raise ValueError(
                f"frame size {width}x{height} differs from the first frame's {self.size[0]}x{self.size[1]}"
            )
        assert self._encoder is not None
        try:
            self._encoder.feed(np.ascontiguousarray(_even_frame(frame)).data)
        except OSError as error:  # BrokenPipeError: ffmpeg exited early
            message = self._encoder.failure_message(self._encoder.stop(timeout=10.0))
            self.abort()
            raise VideoWriteError(message) from error
        self.num_frames += 1

    def close(self) -> None:
        """Finish the file: flush ffmpeg, check it succeeded, move the result to ``path``."""
        if self._closed:
            return
        self._closed = True
        if self._encoder is None:
            raise VideoWriteError(f"No frames were written to '{self.path.name}'; nothing to save.")
        try:
            returncode = self._encoder.stop(timeout=WRITER_CLOSE_TIMEOUT_S)
            if returncode != 0:
                raise VideoWriteError(self._encoder.failure_message(returncode))
            if self.has_audio:
                assert self.audio_from is not None
                command = _audio_command(
                    self._video_only_path,
                    self.audio_from,
                    self.audio_max_seconds,
                    self.num_frames / self.fps,
                    self.metadata,
                    self._temp_path,
                )
                _mux_audio(command, self.audio_from, self.path.name)
            os.replace(self._temp_path, self.path)
        finally:
            self._cleanup()

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial output (used when the caller's code failed)."""
        self._closed = True
        if self._encoder is not None:
            self._encoder.kill()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._encoder is not None:
            self._encoder.close_log()
        self._temp_path.unlink(missing_ok=True)
        self._video_only_path.unlink(missing_ok=True)
