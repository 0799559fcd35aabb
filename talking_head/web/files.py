"""The app's output folder: a fresh file per result, files older than an hour deleted."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

OUTPUT_MAX_AGE_S = 3600.0  # files in the app's output folder older than this are deleted
OUTPUT_DIR = Path(tempfile.gettempdir()) / "talking-head-app"


def new_output_path(prefix: str, suffix: str = ".mp4", folder: Path = OUTPUT_DIR) -> Path:
    """A fresh file in the app's output folder, after deleting files older than an hour there."""
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - OUTPUT_MAX_AGE_S
    for old in folder.iterdir():
        try:
            if old.is_file() and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another request removed it first
    handle, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=suffix, dir=folder)
    os.close(handle)
    return Path(name)
