"""The Live tab in a real browser, with Chromium's fake camera playing a face the test makes.

The camera clip is the example photo driven by the shipped weights: the
astronaut opening and closing her mouth every 4 s (``talking_head.live.camera_clip``),
written as Y4M for ``--use-file-for-fake-video-capture``. The page prepares
the same photo, streams the camera and shows each rendered frame. The test
samples, at the same instants, the camera frame the page is showing and the
rendered frame, re-detects both faces (dlib) and measures their inner-lip
gaps: the rendered mouth must follow the camera's (correlation ≥ 0.8 at the
best lag under a second; the lag is the live latency). Then the session must
end at its limit (``TALKING_HEAD_LIVE_SECONDS=12``): the status says so and no
new frame comes.
"""

from __future__ import annotations

import base64
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_app_browser import CHROMIUM, CHROMIUM_ARGS
from test_app_client import AppServer, start_app, stop_app

from talking_head.animation.pipeline import embed_person, load_model
from talking_head.errors import NoFaceError
from talking_head.face.edits import inner_lip_gap
from talking_head.face.landmarks import get_detector
from talking_head.live.camera_clip import face_clip, mouth_track, write_y4m
from talking_head.media.images import load_image

pytestmark = pytest.mark.browser

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
LIMIT_S = 12
PERIOD_S = 4.0
SAMPLE_EVERY_S = 0.12
MIN_CORRELATION = 0.8

# The camera's current frame and the rendered frame's address, read at the same instant.
SAMPLE_JS = """() => {
  const video = document.querySelector('#live-camera video');
  const img = document.querySelector('#live-result img');
  if (!video || !video.videoWidth || !img || !img.src) return null;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return [canvas.toDataURL('image/png'), img.src];
}"""


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path) -> Path:
    model = load_model(WEIGHTS)
    detector = get_detector("dlib")
    photo = load_image(astronaut_path)
    person = embed_person(model, [photo], detector)
    track = mouth_track(
        detector.detect(photo).points, photo.shape[:2], seconds=2 * PERIOD_S, period_s=PERIOD_S
    )
    frames = face_clip(model, person, track, runtime="torch")
    return write_y4m(frames, tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("live-app")
    running = start_app(
        WEIGHTS,
        folder / "server.log",
        TALKING_HEAD_LIVE_SECONDS=str(LIMIT_S),
        TALKING_HEAD_RUNTIME="onnx",
        OMP_NUM_THREADS="2",
    )
    yield running
    stop_app(running)


def _fetch(url: str, attempts: int = 3) -> bytes:
    """A rendered frame from the server (plain HTTP: the page's own requests may be cancelled as it updates)."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.read()
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _gap(image: np.ndarray, detector) -> float | None:
    try:
        return inner_lip_gap(detector.detect(image).points)
    except NoFaceError:
        return None


def _decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _best_lag_correlation(camera: np.ndarray, rendered: np.ndarray, max_lag: int) -> tuple[float, int]:
    """The highest correlation of ``rendered[t]`` with ``camera[t - lag]`` over lags 0..max_lag samples."""
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        a, b = camera[: len(camera) - lag], rendered[lag:]
        keep = np.isfinite(a) & np.isfinite(b)
        if keep.sum() >= 10:
            best = max(best, (float(np.corrcoef(a[keep], b[keep])[0, 1]), lag))
    return best


def _start_camera(page) -> None:
    page.locator('#live-camera div[title="grant webcam access"] button').click()
    page.locator("#live-camera button").filter(has_text="Record").first.click()


def test_the_live_result_follows_the_camera_and_ends_at_its_limit(
    server, camera_clip, astronaut_path, artifacts_dir
) -> None:
    from playwright.sync_api import sync_playwright

    detector = get_detector("dlib")
    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera_clip}"]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(server.url, wait_until="domcontentloaded")
            page.locator("#animate").wait_for(timeout=60_000)  # the page is up
            page.get_by_role("tab", name="Live").click()
            page.locator("#live-photos input[type=file]").set_input_files(str(astronaut_path))
            page.locator("#live-photos").get_by_text("astronaut.png").wait_for(timeout=120_000)
            page.locator("#live-prepare").click()
            page.wait_for_function(
                "document.querySelector('#live-status textarea').value.startsWith('Ready')", timeout=120_000
            )
            _start_camera(page)
            samples, started = [], time.monotonic()
            while time.monotonic() - started < LIMIT_S + 20:
                status = page.locator("#live-status textarea").input_value()
                if "ended" in status:
                    break
                pair = page.evaluate(SAMPLE_JS)
                if pair is not None:
                    samples.append((time.monotonic(), *pair))
                time.sleep(SAMPLE_EVERY_S)
            ended_after = time.monotonic() - started
            page.screenshot(path=str(artifacts_dir / "live_tab.png"))
            assert "ended" in status, f"the session did not end within {LIMIT_S + 20} s: {status!r}"
            last = page.locator("#live-result img").get_attribute("src")
            time.sleep(2.5)
            assert page.locator("#live-result img").get_attribute("src") == last, (
                "frames came after the limit"
            )
            results = {src: _fetch(src) for src in {src for *_, src in samples}}
        finally:
            browser.close()

    assert LIMIT_S - 1 <= ended_after <= LIMIT_S + 12
    assert len(results) >= 10, f"only {len(results)} rendered frames came back"
    camera = np.array(
        [_gap(_decode(base64.b64decode(url.split(",", 1)[1])), detector) or np.nan for _, url, _ in samples],
        dtype=float,
    )
    rendered = np.array([_gap(_decode(results[src]), detector) or np.nan for *_, src in samples], dtype=float)
    correlation, lag = _best_lag_correlation(camera, rendered, max_lag=round(1.0 / SAMPLE_EVERY_S))
    print(
        f"live: {len(results)} frames in {ended_after:.1f} s, mouth correlation {correlation:.3f} at lag {lag}"
    )
    assert np.isfinite(rendered).mean() > 0.9, "the rendered face was not found in most frames"
    assert correlation >= MIN_CORRELATION, f"mouth correlation {correlation:.2f} (lag {lag} samples)"
