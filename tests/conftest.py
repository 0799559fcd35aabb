"""Shared test set-up: offline, CPU, no telemetry; markers for slow and GPU tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TALKING_HEAD_LANDMARKS", "dlib")
# Exact float32 everywhere, whatever the CPU: tests/test_precision.py asks for bf16 itself.
os.environ.setdefault("TALKING_HEAD_PRECISION", "fp32")
# PyTorch rendering unless a test asks for ONNX Runtime (tests/test_onnx_runtime.py): `auto` would
# export a graph for every random tiny model into the user's cache.
os.environ.setdefault("TALKING_HEAD_RUNTIME", "torch")

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
ASTRONAUT = EXAMPLES / "astronaut.png"
ARTIFACTS = REPO_ROOT / "test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test, skipped unless --runslow")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU, skipped where none is present")
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium; skipped where /usr/bin/chromium is missing"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--runslow")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a hard requirement
        has_cuda = False
    # CI installs Chromium (.ci/run): there a missing browser must fail, not skip.
    has_chromium = Path("/usr/bin/chromium").exists() or bool(os.environ.get("CI"))
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: pass --runslow"))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU"))
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(pytest.mark.skip(reason="/usr/bin/chromium not installed"))


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """Tests run tiny networks: threads gain nothing, and on a shared CPU OpenMP threads thrash."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return ASTRONAUT


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
