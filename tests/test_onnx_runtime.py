"""ONNX Runtime rendering (issue 24): the export, the frames against PyTorch's, the policy and its fallbacks.

One export of the shipped G (``export-onnx``, seconds) is shared by the module;
tests that need onnxruntime, onnx or onnxscript skip without them. The
fallback tests make ``import onnxruntime`` fail and run everywhere.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ASTRONAUT, EXAMPLES, REPO_ROOT

from talking_head.animation import pipeline
from talking_head.animation.finetune import FinetuneConfig
from talking_head.errors import TalkingHeadError
from talking_head.evaluation.metrics import psnr
from talking_head.face.tracking import LandmarkTrack
from talking_head.nets import onnx_export, runtime
from talking_head.nets.precision import resolve_precision

WEIGHTS = REPO_ROOT / "weights"
MOTION = EXAMPLES / "motions" / "calm-talking.npz"
MIN_PSNR_DB = 40.0  # issue 24's bar for ONNX Runtime's frames against PyTorch's
FRAMES = 12  # frames of the example motion compared (a full batch of 8 and a partial one of 4)
FP32 = resolve_precision("fp32", "cpu")


def _exporter_missing() -> str | None:
    for name in ("onnxruntime", "onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            return name
    return None


needs_onnx = pytest.mark.skipif(
    _exporter_missing() is not None or not (WEIGHTS / "config.json").exists(),
    reason=f"{_exporter_missing()} is not installed, or no shipped weights",
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Graphs go to a folder of the test's own, never the user's cache; choices are measured afresh."""
    monkeypatch.setenv(onnx_export.ENV_CACHE, str(tmp_path / "cache"))
    runtime._SPEEDUPS.clear()
    runtime._auto_choice.cache_clear()


@pytest.fixture(scope="module")
def model():
    return pipeline.load_model(WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model) -> tuple[Path, int, str]:
    """The shipped G exported once by the CLI: (graph, exit code, printed output)."""
    if _exporter_missing() is not None:
        pytest.skip(f"{_exporter_missing()} is not installed")
    import contextlib
    import io

    from talking_head.__main__ import main

    out = tmp_path_factory.mktemp("onnx")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["export-onnx", str(WEIGHTS), "--out", str(out)])
    return out / onnx_export.GRAPH_NAME, code, printed.getvalue()


@pytest.fixture(scope="module")
def person(model):
    return pipeline.embed_person(model, [ASTRONAUT])


@pytest.fixture(scope="module")
def targets(person) -> np.ndarray:
    """The example motion retargeted to the astronaut, first FRAMES frames (crop pixels)."""
    from talking_head.face.motion import retarget_landmarks

    motion = pipeline.load_driving(LandmarkTrack.load(MOTION), 256)
    return retarget_landmarks(person.source_landmarks, motion.points[:FRAMES], mode="relative")


def _onnx(graph: Path) -> runtime.Runtime:
    return runtime.Runtime("onnx", "onnx", "test", graph, threads=1)


def _render(model, person, points, which) -> np.ndarray:
    return np.stack(list(pipeline.render_landmarks(model, person, points, precision=FP32, runtime=which)))


def _min_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return min(psnr(x, y) for x, y in zip(a, b))


# ----- the export ------------------------------------------------------------------


@needs_onnx
def test_export_onnx_writes_a_checked_graph_of_these_weights(exported, model) -> None:
    graph, code, printed = exported
    assert code == 0, printed
    assert graph.is_file() and "max |Δx̂|" in printed and "model card:" in printed
    # The graph names the weights it was made from; another G (one tensor changed) is not those weights.
    assert onnx_export.graph_fingerprint(graph) == onnx_export.generator_fingerprint(model.generator)
    other = onnx_export.fold_spectral_norm(model.generator)
    assert onnx_export.generator_fingerprint(other) != onnx_export.graph_fingerprint(graph)


@needs_onnx
def test_graph_next_to_the_weights_is_found_and_others_are_not(exported, model, tmp_path) -> None:
    graph = exported[0]
    folder = tmp_path / "weights"
    shutil.copytree(WEIGHTS, folder)
    shutil.copy(graph, folder / onnx_export.GRAPH_NAME)
    loaded = pipeline.load_model(folder, device="cpu")  # remembers the folder for its G
    found = runtime.resolve_runtime("onnx", loaded.generator, FP32)
    assert found.is_onnx and found.graph == folder / onnx_export.GRAPH_NAME  # no export: used as shipped
    with torch.random.fork_rng():
        torch.manual_seed(1)
        stranger = type(model.generator)(model.config)  # same architecture, other weights
    assert onnx_export.find_graph(stranger, [folder]) is None


# ----- frames: ONNX Runtime vs PyTorch ------------------------------------------------


@needs_onnx
def test_onnx_frames_match_pytorch_on_the_shipped_weights(exported, model, person, targets) -> None:
    torch_frames = _render(model, person, targets, "torch")
    onnx_frames = _render(model, person, targets, _onnx(exported[0]))
    assert onnx_frames.shape == torch_frames.shape == (FRAMES, 256, 256, 3)
    assert _min_psnr(onnx_frames, torch_frames) >= MIN_PSNR_DB


@needs_onnx
def test_onnx_frames_match_pytorch_on_finetuned_weights(exported, model, person, targets) -> None:
    # A learning rate 20x the default, so that two steps change G' visibly.
    tuned = pipeline.finetune_person(model, person, steps=2, config=FinetuneConfig(generator_lr=1e-3, seed=0))
    torch_frames = _render(model, tuned, targets, "torch")
    onnx_frames = _render(model, tuned, targets, _onnx(exported[0]))
    assert _min_psnr(onnx_frames, torch_frames) >= MIN_PSNR_DB
    # The check can fail: G's own weights with ψ' are not G' (the graph must take G''s tensors).
    base_weights = _render(model, dataclasses.replace(tuned, generator=None), targets, "torch")
    assert _min_psnr(base_weights, torch_frames) < MIN_PSNR_DB


@needs_onnx
def test_a_graph_refuses_tensors_of_another_shape(exported, model) -> None:
    tensors = onnx_export.rendering_tensors(model.generator)
    name = next(iter(tensors))
    with pytest.raises(ValueError, match="no tensor"):
        runtime._graph_with_tensors(exported[0], {name: torch.zeros(1, *tensors[name].shape)})


# ----- the policy -------------------------------------------------------------------------


@needs_onnx
@pytest.mark.parametrize(
    ("speedup", "against", "expected"),
    [
        (3.0, "fp32", "onnx"),
        (1.0, "fp32", "torch"),  # the same numbers: switching must pay
        (0.9, "bf16-auto", "onnx"),  # a tie with bf16 goes to float32
        (0.7, "bf16-auto", "torch"),  # bf16 well ahead
    ],
)
def test_auto_keeps_onnx_only_when_measured_faster(
    exported, model, monkeypatch, speedup, against, expected
) -> None:
    monkeypatch.setattr(runtime, "cached_graph", lambda generator, folders: exported[0])
    monkeypatch.setattr(runtime, "measure_onnx_speedup", lambda *args, **kwargs: speedup)
    # what precision auto resolves to on a CPU where bf16 measured faster (a bf16 asked for never gets here)
    precision = (
        FP32 if against == "fp32" else dataclasses.replace(resolve_precision("bf16", "cpu"), policy="auto")
    )
    chosen = runtime.resolve_runtime("auto", model.generator, precision)
    assert chosen.name == expected and f"{speedup:.2f}×" in chosen.reason


@needs_onnx
def test_the_measurement_times_both_runtimes(exported, model) -> None:
    speedup = runtime.measure_onnx_speedup(model.generator, exported[0], FP32, batch=1, rounds=1)
    assert np.isfinite(speedup) and speedup > 0


def test_torch_and_cuda_render_in_pytorch(model) -> None:
    assert runtime.resolve_runtime("torch", model.generator, FP32).name == "torch"
    on_meta = type(model.generator)(model.config).to("meta")  # a device that is not a CPU
    chosen = runtime.resolve_runtime("onnx", on_meta, FP32)
    assert chosen.name == "torch" and "meta" in chosen.reason


def test_auto_keeps_a_bf16_run_in_pytorch(model) -> None:
    chosen = runtime.resolve_runtime("auto", model.generator, resolve_precision("bf16", "cpu"))
    assert chosen.name == "torch" and "bf16 asked for" in chosen.reason


def test_runtime_policy_from_the_environment() -> None:
    assert runtime.runtime_from_env({}) == "auto"
    assert runtime.runtime_from_env({runtime.ENV_RUNTIME: " ONNX "}) == "onnx"
    with pytest.raises(TalkingHeadError, match=runtime.ENV_RUNTIME):
        runtime.runtime_from_env({runtime.ENV_RUNTIME: "tensorrt"})


def test_the_app_warms_the_runtime_up_at_start_and_refuses_a_bad_one(tmp_path, caplog) -> None:
    from _tiny_weights import make_tiny_weights

    from talking_head.web.state import load_app_weights

    weights = make_tiny_weights(tmp_path / "tiny")
    with caplog.at_level(logging.INFO, logger="talking_head.web.state"):
        assert load_app_weights(str(weights), "cpu", {runtime.ENV_RUNTIME: "torch"}).ok
    assert "rendering with torch (PyTorch asked for)" in caplog.text
    with pytest.raises(TalkingHeadError, match=runtime.ENV_RUNTIME):
        load_app_weights(str(weights), "cpu", {runtime.ENV_RUNTIME: "gpu-please"})


def test_cache_folder_is_per_user(monkeypatch) -> None:
    assert onnx_export.graph_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/talking-head/onnx")
    assert onnx_export.graph_cache_dir({onnx_export.ENV_CACHE: "/y"}) == Path("/y/onnx")
    assert onnx_export.graph_cache_dir({}) == Path.home() / ".cache" / "talking-head" / "onnx"


# ----- fallbacks: no onnxruntime, a failed export ------------------------------------------


@pytest.mark.parametrize("policy", ["auto", "onnx"])
def test_without_onnxruntime_rendering_falls_back_to_pytorch(
    model, person, targets, monkeypatch, policy
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    assert runtime.import_onnxruntime() is None
    chosen = runtime.resolve_runtime(policy, model.generator, FP32)
    assert chosen.name == "torch" and "not installed" in chosen.reason
    frames = _render(model, person, targets[:3], policy)
    assert np.array_equal(frames, _render(model, person, targets[:3], "torch"))


def test_a_failed_export_falls_back_to_pytorch_with_a_log_line(model, monkeypatch, caplog) -> None:
    if runtime.import_onnxruntime() is None:
        pytest.skip("onnxruntime is not installed (the fallback before any export is tested above)")

    def fail(generator, folders):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(runtime, "cached_graph", fail)
    with caplog.at_level(logging.WARNING, logger="talking_head.nets.runtime"):
        chosen = runtime.resolve_runtime("auto", model.generator, FP32)
    assert chosen.name == "torch" and "exporter broke" in chosen.reason
    assert "exporter broke" in caplog.text


@needs_onnx
def test_live_frames_on_onnx_runtime_match_the_clip_renderer(exported, model, person, targets) -> None:
    """Live mode's batch-1 renderer (numpy warp and conversions around the session) makes the clip's frames."""
    from talking_head.live.render import FrameRenderer

    live = FrameRenderer(model, person, precision=FP32, runtime=_onnx(exported[0]))
    frames = np.stack([live(points) for points in targets[:4]])
    assert _min_psnr(frames, _render(model, person, targets[:4], _onnx(exported[0]))) >= 45
