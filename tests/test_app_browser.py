"""A real browser (Debian's Chromium via Playwright) on the launched app.

Opens the page, uploads the astronaut photo, picks an example motion, clicks
Animate and waits for the result video to get a source; saves a screenshot to
``test-artifacts/``. Then uploads a text file as the photo, checks that the
specific error message is shown, and that a second valid request still works.
Then sets the motion controls (lips only, no blinks, multiplier 0.5) and checks
that the status line names them. Last, records two seconds from Chromium's
fake camera and checks that the player knows the recording's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _tiny_weights import make_tiny_weights
from test_app_client import AppServer, start_app, stop_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",  # a synthetic camera and microphone for the webcam test
    "--use-fake-ui-for-media-stream",
]
RESULT_TIMEOUT_MS = 180_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("browser-app")
    # One second of driving motion (25 frames) keeps each request short.
    running = start_app(
        make_tiny_weights(folder / "weights"), folder / "server.log", TALKING_HEAD_MAX_SECONDS="1"
    )
    yield running
    stop_app(running)


@pytest.fixture(scope="module")
def page(server: AppServer):  # -> playwright Page
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(server.url, wait_until="domcontentloaded")
            page.locator("#animate").wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


def _result_source(page) -> str | None:
    return (
        page.locator("#result video").first.get_attribute("src")
        if page.locator("#result video").count()
        else None
    )


def _upload_photo(page, path: Path) -> None:
    """Replace the photos with ``path`` (an upload adds to the files already there)."""
    clear = page.locator("#photos button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
        page.locator("#photos button[aria-label='Clear']").wait_for(state="detached", timeout=10_000)
    page.locator("#photos input[type=file]").set_input_files(str(path))


def _animate_and_wait(page, previous: str | None) -> str:
    page.locator("#animate").click()
    page.wait_for_function(
        """previous => {
            const video = document.querySelector('#result video');
            return video && video.getAttribute('src') && video.getAttribute('src') !== previous;
        }""",
        arg=previous,
        timeout=RESULT_TIMEOUT_MS,
    )
    return _result_source(page)


def _pick_example_motion(page) -> None:
    page.locator("#motion-examples").get_by_text("calm talking").first.click()
    page.locator("#driving-motion").get_by_text("calm-talking").first.wait_for(timeout=30_000)


def test_photo_and_example_motion_give_a_video(page, astronaut_path: Path, artifacts_dir: Path) -> None:
    _upload_photo(page, astronaut_path)
    page.locator("#faces img").first.wait_for(timeout=60_000)  # the preview with the detected face
    _pick_example_motion(page)
    source = _animate_and_wait(page, None)
    assert source
    page.locator("#status textarea").first.wait_for()
    status = page.locator("#status textarea").first.input_value()
    assert "frames rendered" in status and "landmarks: dlib" in status
    page.wait_for_timeout(500)  # let the video element paint its first frame
    page.screenshot(path=str(artifacts_dir / "app.png"), full_page=True)


def test_text_file_as_photo_shows_the_error_and_the_next_request_works(
    page, astronaut_path: Path, artifacts_dir: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    before = _result_source(page)
    _pick_example_motion(page)
    _upload_photo(page, notes)
    page.locator("#animate").click()
    message = page.get_by_text("Photo 1 ('notes.txt') is not an image").first
    message.wait_for(timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "app-error.png"), full_page=True)
    _upload_photo(page, astronaut_path)
    page.locator("#faces img").first.wait_for(timeout=60_000)
    assert _animate_and_wait(page, before) != before


def test_motion_controls_reach_the_render(page, astronaut_path: Path, artifacts_dir: Path) -> None:
    before = _result_source(page)
    _upload_photo(page, astronaut_path)
    page.locator("#faces img").first.wait_for(timeout=60_000)
    _pick_example_motion(page)
    page.locator("#motion-controls").get_by_text("Motion controls").first.click()
    page.locator("#region").get_by_label("lips only", exact=True).check()
    page.locator("#blinks").get_by_label("none", exact=True).check()
    page.locator("#multiplier input[type=number]").first.fill("0.5")
    page.locator("#multiplier input[type=number]").first.press("Enter")
    assert _animate_and_wait(page, before) != before
    status = page.locator("#status textarea").first.input_value()
    assert "motion: lips only ×0.5, no blinks" in status, status
    page.screenshot(path=str(artifacts_dir / "app-motion-controls.png"), full_page=True)
    page.locator("#region").get_by_label("all", exact=True).check()  # back to the defaults for the next test
    page.locator("#blinks").get_by_label("the driver's", exact=True).check()
    page.locator("#multiplier input[type=number]").first.fill("1")
    page.locator("#multiplier input[type=number]").first.press("Enter")


def test_a_webcam_recording_shows_its_length(page, artifacts_dir: Path) -> None:
    page.get_by_role("tab", name="Your clip or webcam").click()
    clip = page.locator("#driving-clip")
    clip.get_by_label("Capture from camera").click()
    clip.get_by_text("Click to Access Webcam").click()
    record = clip.get_by_label("start recording")  # one button: "Record", then "Stop"
    record.wait_for(timeout=30_000)
    record.click()
    record.filter(has_text="Stop").wait_for(timeout=30_000)  # recording has started
    page.wait_for_timeout(2_500)
    record.click()
    # Chromium's WebM states no duration ("0:00 / Infinity:NaN:NaN"); the app swaps in an MP4 that does.
    page.wait_for_function(
        """() => {
            const video = document.querySelector('#driving-clip video');
            return video && (video.getAttribute('src') || '').endsWith('.mp4')
                && Number.isFinite(video.duration) && video.duration > 0;
        }""",
        timeout=RESULT_TIMEOUT_MS,
    )
    page.screenshot(path=str(artifacts_dir / "app-webcam.png"), full_page=True)
    assert "Infinity" not in clip.inner_text() and "NaN" not in clip.inner_text()
