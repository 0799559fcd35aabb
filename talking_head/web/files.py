"""The app's output files: a folder of this process's own, and a fresh file per result.

Several instances of the app may run on one machine (two users, a test
server beside a real one). Each process writes into its own folder under the
system's temporary directory (:data:`OUTPUT_DIR`: the process id and a random
token in its name, made on first use with mode 0700, removed when the process
that made it exits), and deletes only the files it created itself once they
are older than :data:`OUTPUT_MAX_AGE_S`, never another instance's.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

OUTPUT_MAX_AGE_S = 3600.0  # this process's output files older than this are deleted
# This process's folder; only its name is chosen at import, the folder is made on first use.
OUTPUT_DIR = Path(tempfile.gettempdir()) / f"talking-head-app-{os.getpid()}-{secrets.token_hex(4)}"

_CREATED: dict[Path, float] = {}  # files this process created -> creation time (time.time())
_MADE_FOLDERS: set[Path] = set()  # folders this process made (removed at its exit)


def _remove_folder(folder: Path, owner_pid: int) -> None:
    """At exit: remove ``folder`` if this is the process that made it (a forked worker inherits the hook)."""
    if os.getpid() == owner_pid:
        shutil.rmtree(folder, ignore_errors=True)


def _ensure_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder == OUTPUT_DIR and folder not in _MADE_FOLDERS:
        _MADE_FOLDERS.add(folder)
        atexit.register(_remove_folder, folder, os.getpid())


def delete_old_outputs(max_age_s: float = OUTPUT_MAX_AGE_S) -> list[Path]:
    """Delete the files this process created more than ``max_age_s`` ago; return them."""
    cutoff = time.time() - max_age_s
    old = [path for path, created in _CREATED.items() if created < cutoff]
    for path in old:
        del _CREATED[path]
        try:
            path.unlink()
        except OSError:
            pass  # already gone (removed by hand, or its folder was cleaned)
    return old


def new_output_path(prefix: str, suffix: str = ".mp4", folder: Path | None = None) -> Path:
    """A fresh file in ``folder`` (default: this process's :data:`OUTPUT_DIR`), after deleting this process's old ones."""
    folder = OUTPUT_DIR if folder is None else Path(folder)
    delete_old_outputs()
    _ensure_folder(folder)
    handle, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=suffix, dir=folder)
    os.close(handle)
    path = Path(name)
    _CREATED[path] = time.time()
    return path
