"""The Edit tab of the launched app: the ``/edit`` endpoint through gradio_client, and a slider in Chromium.

The server runs in a subprocess with tiny random weights (a warp-guided G that
returns the warp of the photo), the dlib landmarks, no analytics, no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _tiny_weights import make_tiny_weights
from PIL import Image
from test_app_browser import CHROMIUM, CHROMIUM_ARGS
from test_app_client import AppServer, start_app, stop_app

from talking_head.face.edits import EDIT_NAMES
from talking_head.web.editing import check_edit_values


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("edit-app")
    running = start_app(make_tiny_weights(folder / "weights"), folder / "server.log", TALKING_HEAD_RUNTIME="torch")
    yield running
    stop_app(running)


def _edit(server: AppServer, photo: Path, watermark: bool = False, **amounts: float):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False, download_files=str(Path(server.log).parent / "downloads"))
    values = [amounts.get(name, 0.0) for name in EDIT_NAMES]
    return client.predict(handle_file(str(photo)), *values, watermark, api_name="/edit")


def test_edit_endpoint_returns_the_edited_photo_at_its_size(server: AppServer, astronaut_path: Path) -> None:
    plain, _, _ = _edit(server, astronaut_path)
    opened, panel, status = _edit(server, astronaut_path, mouth_open=1.0)
    original = np.asarray(Image.open(astronaut_path).convert("RGB"))
    edited = np.asarray(Image.open(opened).convert("RGB"))
    assert edited.shape == original.shape
    assert np.abs(edited.astype(int) - np.asarray(Image.open(plain).convert("RGB"))).max() > 30
    assert Image.open(panel).size == (256, 256)
    assert status.startswith("mouth open 1: 512×512 still rendered in")
    assert "embedded" not in status  # the first call embedded the photo; this one took it from the cache


def test_edit_endpoint_names_the_slider_that_is_out_of_range(server: AppServer, astronaut_path: Path) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Smile must be between -1 and 1, got 3"):
        _edit(server, astronaut_path, smile=3.0)
    with pytest.raises(AppError, match="Upload a photo of a face first"):
        from gradio_client import Client

        Client(server.url, verbose=False).predict(None, *[0.0] * len(EDIT_NAMES), True, api_name="/edit")
    assert "Traceback" not in server.log.read_text().split("Running on")[0]


def test_check_edit_values_accepts_the_ranges_and_refuses_others() -> None:
    assert check_edit_values({"roll": 30, "yaw": -1}).roll == 30
    with pytest.raises(Exception, match="Head roll must be between -30 and 30"):
        check_edit_values({"roll": 31})
    with pytest.raises(Exception, match="Mouth open must be a number"):
        check_edit_values({"mouth_open": "wide"})


@pytest.mark.browser
def test_moving_a_slider_shows_a_new_still(server: AppServer, astronaut_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(server.url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Edit").click()
            page.locator("#edit-photo input[type=file]").set_input_files(str(astronaut_path))
            page.locator("#edit-result img").first.wait_for(timeout=120_000)
            first = page.locator("#edit-result img").first.get_attribute("src")
            page.locator("#edit-mouth-open input[type=range]").first.fill("1")
            page.wait_for_function(
                """previous => {
                    const img = document.querySelector('#edit-result img');
                    return img && img.getAttribute('src') !== previous;
                }""",
                arg=first,
                timeout=120_000,
            )
            status = page.locator("#edit-status textarea").first.input_value()
            assert status.startswith("mouth open 1:")
            page.screenshot(path=str(artifacts_dir / "app_edit.png"), full_page=True)
        finally:
            browser.close()
