"""The README's picture of the Live tab: the real page, the shipped weights, Chromium's fake camera.

The camera plays the public-domain astronaut photo opening and closing her
mouth, rendered beforehand by the shipped weights
(:mod:`talking_head.live.camera_clip`), so no one's face is recorded. The
page prepares the same photo and streams the camera for ``--seconds``; the
Live tab is then saved as ``docs/media/live_tab.png`` with its status line
(frame rate and server latency), which ``docs/media/made_with.json``
records with the machine. ONNX Runtime renders (the page's ``auto`` on a
CPU with it installed).

    python scripts/make_live_screenshot.py       # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_screenshot import CHROMIUM, PHOTO, record_picture, start_app

from talking_head.animation.pipeline import embed_person, load_model
from talking_head.evaluation.machine import machine_info
from talking_head.face.landmarks import get_detector
from talking_head.live.camera_clip import face_clip, mouth_track, write_y4m
from talking_head.media.images import load_image

OUT = ROOT / "docs" / "media" / "live_tab.png"


def camera_file(weights: str, folder: Path) -> Path:
    model, detector, photo = load_model(weights), get_detector("dlib"), load_image(PHOTO)
    person = embed_person(model, [photo], detector)
    track = mouth_track(detector.detect(photo).points, photo.shape[:2], seconds=6.0, period_s=3.0)
    return write_y4m(face_clip(model, person, track), folder / "camera.y4m")


def capture(url: str, camera: Path, seconds: float) -> str:
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#animate").wait_for(timeout=60_000)
            page.get_by_role("tab", name="Live").click()
            page.locator("#live-photos input[type=file]").set_input_files(str(PHOTO))
            page.locator("#live-photos").get_by_text(PHOTO.name).wait_for(timeout=30_000)
            page.locator("#live-prepare").click()
            page.wait_for_function(
                "document.querySelector('#live-status textarea').value.startsWith('Ready')", timeout=120_000
            )
            page.locator('#live-camera div[title="grant webcam access"] button').click()
            page.locator("#live-camera button").filter(has_text="Record").first.click()
            time.sleep(seconds)
            status = page.locator("#live-status textarea").input_value()
            page.locator("#live-result").locator("..").locator("..").screenshot(path=str(OUT))
        finally:
            browser.close()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="weights")
    parser.add_argument("--seconds", type=float, default=6.0, help="streaming before the picture (default 6)")
    args = parser.parse_args(argv)
    info = machine_info()
    print(info["summary"], flush=True)
    log = ROOT / "test-artifacts" / "live-screenshot-server.log"
    log.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        camera = camera_file(args.weights, Path(folder))
        process, url = start_app(
            args.weights, "auto", log, TALKING_HEAD_RUNTIME="onnx", TALKING_HEAD_LIVE_SECONDS="60"
        )
        try:
            status = capture(url, camera, args.seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"wrote {OUT}\n{status}")
    entry = {
        "made_by": "python scripts/make_live_screenshot.py",
        "weights": args.weights,
        "rendering": "ONNX Runtime",
        "precision": "fp32",  # ONNX Runtime renders in float32
        "status": status,
        "note": "Chromium, the fake camera and the server share the machine here; a visitor's browser runs on theirs",
    }
    keys = ("cpu", "cpu_family_model", "cpu_bf16_flags", "cores", "load_average_1m", "torch", "gpu", "summary")
    record_picture("live_tab.png", entry, info, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
