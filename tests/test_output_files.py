"""The app's output folder: one per process, and only its own old files are deleted."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from talking_head.web import files

REPO_ROOT = Path(__file__).resolve().parent.parent
TWO_HOURS_S = 7200


def _run_instance(code: str) -> str:
    """Run ``code`` after ``from talking_head.web import files`` in a fresh Python; its stdout."""
    script = f"from talking_head.web import files\n{code}"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_each_process_has_a_folder_of_its_own() -> None:
    first = _run_instance("print(files.new_output_path('a').parent)")
    second = _run_instance("print(files.new_output_path('a').parent)")
    assert first != second
    shared = Path(tempfile.gettempdir()) / "talking-head-app"  # the one folder every instance used to share
    assert Path(first) != shared and Path(second) != shared
    assert files.OUTPUT_DIR not in (Path(first), Path(second))


def test_the_folder_is_private_and_removed_when_its_process_exits() -> None:
    printed = _run_instance(
        "import os\np = files.new_output_path('a')\nprint(p.parent, oct(os.stat(p.parent).st_mode & 0o777))"
    )
    folder, mode = printed.split()
    assert mode == "0o700"
    assert not Path(folder).exists()


def test_only_this_processs_old_files_are_deleted(tmp_path: Path) -> None:
    foreign = tmp_path / "talking-head-other.mp4"  # another instance's file, two hours old
    foreign.write_bytes(b"other")
    os.utime(foreign, (time.time() - TWO_HOURS_S, time.time() - TWO_HOURS_S))
    mine_old = files.new_output_path("talking-head", folder=tmp_path)
    files._CREATED[mine_old] -= TWO_HOURS_S  # created by this process two hours ago
    mine_new = files.new_output_path("talking-head", folder=tmp_path)
    assert foreign.exists(), "another instance's file was deleted"
    assert not mine_old.exists(), "this process's old file was kept"
    assert mine_new.exists() and mine_new != mine_old
