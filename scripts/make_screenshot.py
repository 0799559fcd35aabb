"""The README's screenshot: the real page with the shipped weights, after one click with its defaults.

Starts ``python app.py`` with ``weights/`` (dlib landmarks, ``--precision``
fp32 and PyTorch rendering by default, so that the status line's times are
comparable between machines), opens it in headless Chromium (Playwright,
``/usr/bin/chromium``), uploads the public-domain astronaut photo, picks the
``calm talking`` example motion, clicks Animate with the page's defaults
(the steps slider's start value, 5 s of motion) and saves the whole page as
``docs/screenshot.png`` once the result plays, paused at ``--at`` seconds.
``docs/media/made_with.json`` gets the status line (the click's times) and
the machine, which the README's caption names.

    python scripts/make_screenshot.py        # about 2 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talking_head.evaluation.machine import machine_info

CHROMIUM = "/usr/bin/chromium"
PHOTO = ROOT / "examples" / "astronaut.png"
OUT = ROOT / "docs" / "screenshot.png"
RECORD = ROOT / "docs" / "media" / "made_with.json"
RESULT_TIMEOUT_MS = 600_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(weights: str, precision: str, log: Path, **extra_env: str) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free port, offline; returns the process and its URL once it serves.

    ``extra_env``: more environment variables of the app (they win over the ones set here)."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        TALKING_HEAD_WEIGHTS=weights,
        TALKING_HEAD_LANDMARKS="dlib",
        TALKING_HEAD_PRECISION=precision,
        TALKING_HEAD_RUNTIME="torch",
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    env.update(extra_env)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"app.py did not serve {url}:\n{log.read_text()[-2000:]}")


def click_and_capture(url: str, out: Path, at_seconds: float) -> str:
    """Upload, pick the example motion, click Animate, wait for the result; save the page; return the status."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#animate").wait_for(timeout=120_000)
            page.locator("#photos input[type=file]").set_input_files(str(PHOTO))
            page.locator("#faces img").first.wait_for(timeout=120_000)
            page.locator("#motion-examples").get_by_text("calm talking").first.click()
            page.locator("#driving-motion").get_by_text("calm-talking").first.wait_for(timeout=60_000)
            page.locator("#animate").click()
            page.wait_for_function(
                "() => { const v = document.querySelector('#result video'); return v && v.getAttribute('src'); }",
                timeout=RESULT_TIMEOUT_MS,
            )
            for selector in ("#result video", "#overlay video"):  # show a talking frame, not the first one
                page.locator(selector).first.evaluate(
                    "(v, t) => new Promise(done => { v.pause(); v.currentTime = t; v.onseeked = () => done(); })",
                    at_seconds,
                )
            page.wait_for_timeout(1_000)
            status = page.locator("#status textarea").first.input_value()
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return status


def record_picture(name: str, entry: dict, info: dict, keys: tuple[str, ...]) -> None:
    """Put ``entry`` and the machine (``info``'s ``keys``) under ``name`` in ``docs/media/made_with.json``."""
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    record[name] = {**entry, "machine": {key: info[key] for key in keys}}
    RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="weights", help="weights folder (default weights/, the shipped ones)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"), help="default fp32")
    parser.add_argument("--at", type=float, default=2.0, help="second of the result shown (default 2)")
    args = parser.parse_args(argv)
    info = machine_info()
    print(info["summary"], flush=True)
    log = ROOT / "test-artifacts" / "screenshot-server.log"
    log.parent.mkdir(exist_ok=True)
    process, url = start_app(args.weights, args.precision, log)
    try:
        status = click_and_capture(url, OUT, args.at)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"wrote {OUT}\n{status}")
    entry = {
        "made_by": f"python scripts/make_screenshot.py --precision {args.precision}",
        "weights": args.weights,
        "precision": args.precision,
        "rendering": "PyTorch",
        "status": status,
    }
    keys = ("cpu", "cpu_family_model", "cpu_bf16_flags", "cores", "torch", "torch_threads", "gpu", "summary")
    record_picture("screenshot.png", entry, info, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
