"""Benchmarks: helpers, and the quick mode end to end on the tiny preset."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from talking_head.evaluation import machine, synthetic


def test_machine_info_names_the_machine() -> None:
    info = machine.machine_info()
    assert info["cores"] >= 1 and info["torch"] and info["cpu"]
    assert info["cpu"] in info["summary"] and ("no GPU" in info["summary"] or info["gpu"])


def test_median_seconds_skips_warmup() -> None:
    calls = []
    assert machine.median_seconds(lambda: calls.append(1), repeats=3) >= 0.0
    assert len(calls) == 4  # one warm-up run + three timed runs


def test_synthetic_frames_move() -> None:
    frames = list(synthetic.synthetic_talking_frames(3, size=128))
    assert all(f.shape == (128, 128, 3) and f.dtype == np.uint8 for f in frames)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 1.0


def test_run_python_module_measures_the_child_only(tmp_path: Path) -> None:
    (tmp_path / "alloc50.py").write_text(
        "x = bytearray(50 * 2**20)\nx[::4096] = b'1' * len(x[::4096])\nprint('hi')\n"
    )
    (tmp_path / "fail3.py").write_text("raise SystemExit(3)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    ballast = bytearray(300 * 2**20)  # this process is big; the child must not inherit that in its peak
    ballast[::4096] = b"1" * len(ballast[::4096])
    ok = machine.run_python_module("alloc50", [], env=env)
    assert ok["exit_code"] == 0 and "hi" in ok["output_tail"]
    assert 50 <= ok["peak_rss_mib"] < 250
    assert machine.run_python_module("fail3", [], env=env)["exit_code"] == 3
    del ballast


def test_bench_quick_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from talking_head.__main__ import main

    monkeypatch.setenv("TALKING_HEAD_CACHE", str(tmp_path / "cache"))  # the tiny G's graph, not in ~/.cache
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--landmarks", "dlib", "--out", str(out)])
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    errors = {k: v for k, v in results.items() if isinstance(v, dict) and "error" in v}
    assert not errors, errors
    assert code == 0
    assert {r["batch"] for r in results["networks"]} == {1, 2}
    assert all(r["generator_ms_per_frame"] > 0 for r in results["networks"])
    assert results["finetune"]["ms_per_step"] > 0
    assert results["landmarks"]["backend"] == "dlib" and results["landmarks"]["track_frames_per_s"] > 0
    e2e = results["end_to_end"]
    assert [r["steps"] for r in e2e] == [0, 1]
    assert all(r["exit_code"] == 0 and r["seconds"] > 0 and r["peak_rss_mib"] > 50 for r in e2e), e2e
    warp = results["warp"]
    assert warp["batch"] == 8 and warp["image_size"] == 256 and warp["shots"] == 1
    assert 0 < warp["ms_per_frame"] < 1000 and warp["repeats"] == 10
    assert "warp alone" in printed and "ms/frame" in printed.split("warp alone")[1]
    assert "machine:" in printed and "G ms/frame" in printed and out.with_suffix(".txt").exists()
    # Rendering side by side: every variant at both batch sizes, ONNX Runtime where it is installed.
    rows = {(r["variant"], r["batch"]): r for r in results["runtimes"]["rows"]}
    assert {b for _, b in rows} == {1, 2} and len(rows) == 6
    assert all(r["ms_per_frame"] > 0 for v, r in rows.items() if v[0].startswith("PyTorch"))
    onnx = rows[("ONNX Runtime fp32", 2)]
    assert (onnx["ms_per_frame"] is not None) == (results["runtimes"]["onnxruntime"] is not None), onnx
    assert "rendering: warp + G" in printed and "ONNX Runtime fp32" in printed


def test_bench_native_times_the_whole_photo_against_the_256_path(tmp_path: Path) -> None:
    """The native-output part alone (``bench --only-native``) on the tiny preset: one face size, 8 frames."""
    from talking_head.evaluation.bench import BenchConfig, format_table, run_benchmarks
    from talking_head.evaluation.bench_native import zoomed_photo

    config = dataclasses.replace(BenchConfig.quick(), only_native=True, landmarks_backend="dlib", runtime="torch")
    results = run_benchmarks(config)
    assert "error" not in results["native"], results["native"]
    (row,) = results["native"]["rows"]
    assert row["output"] == "1024x1024" and 230 < row["face_px"] < 280  # the example's face zoomed to 256 px
    assert row["base_ms_per_frame"] > 0 and row["native_ms_per_frame"] > 0
    assert row["ratio"] == pytest.approx(row["native_ms_per_frame"] / row["base_ms_per_frame"])
    assert row["clip_frames"] == 8 and row["peak_traced_mib"] > 0  # streaming itself: test_compositing.py
    table = format_table(results)
    assert "native output (whole photo, longer side 1024) vs the 256² path" in table
    assert f"CPU {results['machine']['cpu']}" in table and "ratio median" in table
    photo = zoomed_photo(np.zeros((100, 100, 3), np.uint8), np.array([[40.0, 40.0], [60.0, 60.0]]), 200, side=300)
    assert photo.shape == (300, 300, 3)
