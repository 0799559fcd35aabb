"""scripts/gpu_check.py: the app's path with finiteness checks, run on a CPU with tiny weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from _tiny_weights import make_tiny_weights

from talking_head.animation import finetune as finetune_module
from talking_head.nets import losses as losses_module

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_passes_and_times_each_stage(tmp_path, capsys) -> None:
    gpu_check = _load_script()
    weights = make_tiny_weights(tmp_path / "weights")
    out = tmp_path / "check.json"
    args = ["--device", "cpu", "--weights", str(weights), "--steps", "2", "--frames", "4", "--json", str(out)]
    assert gpu_check.main(args) == 0
    printed = capsys.readouterr().out
    assert "astronaut.png: OK" in printed and "machine:" in printed
    result = json.loads(out.read_text())["results"][0]
    assert result["frames"] == 4 and result["failures"] == []
    assert set(result["seconds"]) == {"landmarks+embedding", "fine-tuning", "rendering+encoding"}


def test_gpu_check_fails_on_a_non_finite_loss(tmp_path, monkeypatch, capsys) -> None:
    gpu_check = _load_script()
    original = losses_module.weighted_extra_terms

    def nan_terms(config, pred, target, points):
        return original(config, pred, target, points) | {"injected": pred.float().mean() * float("nan")}

    monkeypatch.setattr(finetune_module, "weighted_extra_terms", nan_terms)
    weights = make_tiny_weights(tmp_path / "weights")
    assert gpu_check.main(["--device", "cpu", "--weights", str(weights), "--steps", "4", "--frames", "4"]) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "fine-tuning stopped at step 3 of 4" in printed


def test_gpu_check_says_when_there_is_no_gpu(monkeypatch, capsys) -> None:
    gpu_check = _load_script()
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
