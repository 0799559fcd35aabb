"""The launched app (``python app.py``) driven through ``gradio_client``: results, errors, concurrency.

The server runs in a subprocess with tiny random weights made by the test,
the dlib landmark backend, no analytics and no network. Its peak RSS (VmHWM)
is printed after the concurrency test.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from _tiny_weights import make_tiny_weights

from talking_head.media.video import probe_video
from talking_head.media.video_writer import VideoWriter

REPO_ROOT = Path(__file__).resolve().parent.parent
MOTION = REPO_ROOT / "examples" / "motions" / "calm-talking.npz"
START_TIMEOUT_S = 120.0


@dataclass
class AppServer:
    """A running ``python app.py`` subprocess."""

    process: subprocess.Popen
    url: str
    log: Path

    def peak_rss_mb(self) -> float:
        """VmHWM of the server process, MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_environment(weights: Path, **extra: str) -> dict[str, str]:
    """Environment of a test server: tiny weights, offline, no analytics, dlib, one torch thread."""
    env = dict(os.environ)
    env.update(
        {
            "TALKING_HEAD_WEIGHTS": str(weights),
            "TALKING_HEAD_LANDMARKS": "dlib",
            "TALKING_HEAD_MAX_SECONDS": "2",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_app(weights: Path, log: Path, **extra: str) -> AppServer:
    """Start ``python app.py`` on a free port and wait until it serves the page."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(port)],
            cwd=REPO_ROOT,
            env=app_environment(weights, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return AppServer(process, url, log)
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(
        f"app.py did not serve {url} within {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}"
    )


def stop_app(server: AppServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("app")
    running = start_app(make_tiny_weights(folder / "weights"), folder / "server.log")
    yield running
    stop_app(running)


def _client(server: AppServer):  # -> gradio_client.Client
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(Path(server.log).parent / "downloads"))


def _video_path(value) -> str:
    """gradio_client returns a Video output as a path or as {"video": path, ...}."""
    return value["video"] if isinstance(value, dict) else value


def _animate(
    client,
    photos: list[Path],
    motion: Path | None = None,
    clip: Path | None = None,
    seconds: float = 1,
    steps: int = 0,
    **settings,
):
    from gradio_client import handle_file

    values = {"mode": "relative", "smoothing": 1.0, "paste_back": False, "output_size": 256, "watermark": True}
    values.update(settings)
    return client.predict(
        photos=[handle_file(str(p)) for p in photos],
        driving_clip=handle_file(str(clip)) if clip else None,
        driving_motion=handle_file(str(motion)) if motion else None,
        steps=steps,
        max_seconds=seconds,
        api_name="/animate",
        **values,
    )


def test_photo_and_motion_give_result_and_overlay(server: AppServer, astronaut_path: Path) -> None:
    video, overlay, status = _animate(_client(server), [astronaut_path], motion=MOTION, seconds=1, steps=1)
    result_info = probe_video(_video_path(video))
    overlay_info = probe_video(_video_path(overlay))
    assert result_info.num_frames == 25 and result_info.fps == 25  # 1 s of the 25 fps motion
    assert result_info.size == (256, 256)
    assert overlay_info.num_frames == 25 and overlay_info.size[0] == 3 * overlay_info.size[1]
    assert "25 frames rendered" in status and "landmarks: dlib" in status and "device: cpu" in status
    assert "fine-tuning: 1 step" in status


def test_driving_clip_upload(server: AppServer, astronaut_path: Path, tmp_path: Path) -> None:
    from talking_head.media.images import load_image

    face = np.ascontiguousarray(load_image(astronaut_path)[20:276, 100:356])
    clip = tmp_path / "driver.mp4"
    with VideoWriter(clip, 10) as writer:
        for shift in range(8):
            writer.write(np.roll(face, shift, axis=0))
    video, _, status = _animate(_client(server), [astronaut_path], clip=clip, seconds=2)
    assert probe_video(_video_path(video)).num_frames == 8
    assert "8 frames rendered" in status


def test_user_errors_are_specific_and_the_server_keeps_serving(
    server: AppServer, astronaut_path: Path, tmp_path: Path
) -> None:
    from gradio_client.exceptions import AppError

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    client = _client(server)
    with pytest.raises(AppError, match=r"Photo 1 \('notes.txt'\) is not an image"):
        _animate(client, [notes], motion=MOTION)
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, 10) as writer:
        for _ in range(6):
            writer.write(np.full((128, 128, 3), 90, np.uint8))
    with pytest.raises(AppError, match="No face was found in any of the 6 frames"):
        _animate(client, [astronaut_path], clip=blank)
    with pytest.raises(AppError, match="Choose a driving motion"):
        _animate(client, [astronaut_path])
    video, _, _ = _animate(client, [astronaut_path], motion=MOTION, seconds=1)
    assert probe_video(_video_path(video)).num_frames == 25
    assert "Traceback" not in server.log.read_text().split("Running on")[0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": 500}, r"Fine-tuning steps \(steps=500\) must be a whole number from 0 to 100 on this server"),
        ({"smoothing": 50}, r"Smoothing of the driving landmarks \(smoothing=50\) must be a number of frames from 0 to 5"),
        ({"mode": "sideways"}, r"Motion \(mode='sideways'\) must be 'relative' or 'absolute'"),
        ({"output_size": 5000}, r"Output size \(output_size=5000\) must be 0 \(the model's size\) or a whole number"),
        ({"multiplier": 3}, r"Motion multiplier \(multiplier=3\) must be a number from 0 to 2"),
        ({"region": "nose"}, r"What the driver moves \(region='nose'\) must be one of 'all', 'lips', 'eyes'"),
    ],
    ids=["steps", "smoothing", "mode", "output_size", "multiplier", "region"],
)
def test_out_of_range_settings_name_the_setting_and_log_no_traceback(
    server: AppServer, astronaut_path: Path, settings: dict, message: str
) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        _animate(_client(server), [astronaut_path], motion=MOTION, **settings)
    log = server.log.read_text()
    assert "Traceback" not in log and "greater than maximum" not in log and "not in the list of choices" not in log


def test_motion_controls_come_last_with_defaults_so_older_clients_still_work(
    server: AppServer, astronaut_path: Path
) -> None:
    from gradio_client import handle_file

    client = _client(server)
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/animate"]["parameters"]
    names = [p["parameter_name"] for p in parameters]
    assert names[-4:] == ["multiplier", "region", "closed_lips", "blinks"]
    defaults = {p["parameter_name"]: p["parameter_default"] for p in parameters[-4:] if p["parameter_has_default"]}
    assert defaults == {"multiplier": 1, "region": "all", "closed_lips": False, "blinks": "driver"}
    # A client of the first ten inputs, positionally, as written before the controls existed.
    old = client.predict(
        [handle_file(str(astronaut_path))], None, handle_file(str(MOTION)), 0, "relative", 1.0, 1, False, 256, True,
        api_name="/animate",
    )
    assert "25 frames rendered" in old[2] and "motion:" not in old[2]
    video, _, status = _animate(
        client, [astronaut_path], motion=MOTION, multiplier=0.5, region="lips", closed_lips=True, blinks="none"
    )
    assert probe_video(_video_path(video)).num_frames == 25
    assert "motion: lips only ×0.5, closed lips, no blinks" in status


def test_more_seconds_than_the_limit_are_trimmed_not_refused(server: AppServer, astronaut_path: Path) -> None:
    video, _, status = _animate(_client(server), [astronaut_path], motion=MOTION, seconds=60)
    assert probe_video(_video_path(video)).num_frames == 50  # the server's limit: 2 s of the 25 fps motion
    assert "the first 2 s were used (this server's limit)" in status
    assert "Traceback" not in server.log.read_text()


def test_four_concurrent_requests_complete(server: AppServer, astronaut_path: Path) -> None:
    results: list[object] = [None] * 4
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            results[index] = _animate(_client(server), [astronaut_path], motion=MOTION, seconds=1)
        except BaseException as error:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert all(probe_video(_video_path(r[0])).num_frames == 25 for r in results)
    # One render at a time: the others waited, and their status lines say for how long.
    waits = [float(m.group(1)) for r in results if (m := re.search(r"waiting in the queue ([\d.]+) s", r[2]))]
    assert len(waits) >= 2 and all(wait >= 0.5 for wait in waits), [r[2] for r in results]
    peak = server.peak_rss_mb()
    print(f"4 concurrent requests: {time.perf_counter() - start:.1f} s; server peak RSS {peak:.0f} MB")
    assert peak < 3000  # bounded: one job at a time, frames streamed
