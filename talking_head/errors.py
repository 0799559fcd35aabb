"""Errors a user can cause. Each message is safe to show and says what to do."""

from __future__ import annotations


class TalkingHeadError(Exception):
    """Base class for every error caused by user input or configuration."""


class NoFaceError(TalkingHeadError):
    """No face was found in an image (or in too many frames of a clip)."""


class ImageReadError(TalkingHeadError):
    """An image file could not be opened or decoded."""


class UnsupportedFileError(TalkingHeadError):
    """A file has a type the caller does not accept (e.g. a text file as a photo)."""


class VideoReadError(TalkingHeadError):
    """A video file could not be read."""


class CorruptVideoError(VideoReadError):
    """The file looks like a video but its data cannot be decoded."""


class EmptyVideoError(VideoReadError):
    """The video has a video stream with zero frames."""


class NoVideoStreamError(VideoReadError):
    """The file has no video stream (for example an audio-only file)."""


class WeightsError(TalkingHeadError):
    """Model weights are missing, corrupt or do not match their config."""


class CancelledError(TalkingHeadError):
    """A long operation was cancelled by its progress callback."""


class VideoWriteError(TalkingHeadError):
    """A video file could not be written (missing folder, no permission, disk full, ffmpeg failed)."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the limit (checked from its header, before decoding)."""


class TruncatedVideoError(CorruptVideoError):
    """The video file ends early (an interrupted upload, download or recording)."""


class TrackFormatError(UnsupportedFileError):
    """A file is not a valid landmark track (missing arrays, wrong shapes, non-finite points, bad fps)."""
