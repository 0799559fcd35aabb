"""The precision policy: parsing, auto's choice, bf16 rendering vs fp32 (PSNR), bf16 training vs fp32."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from _synthetic import make_prepared_dataset
from _tiny_weights import make_tiny_weights
from conftest import ASTRONAUT

from talking_head.errors import TalkingHeadError
from talking_head.evaluation.metrics import psnr
from talking_head.evaluation.synthetic import moving_track
from talking_head.nets import precision as precision_module
from talking_head.nets.config import ModelConfig
from talking_head.nets.generator import Generator
from talking_head.nets.losses import LossConfig
from talking_head.nets.precision import (
    ENV_PRECISION,
    parse_precision,
    precision_from_env,
    resolve_precision,
)
from talking_head.training.config import TrainConfig
from talking_head.training.train import train


@pytest.fixture
def fresh_policy(monkeypatch):
    """Forget resolved policies (cached per process) before and after a test that fakes the CPU."""
    precision_module._resolve.cache_clear()
    yield monkeypatch
    precision_module._resolve.cache_clear()


def test_parse_and_env() -> None:
    assert parse_precision(" BF16 ") == "bf16"
    with pytest.raises(TalkingHeadError, match="auto, bf16, fp32"):
        parse_precision("fp16")
    assert precision_from_env({}) == "auto"
    assert precision_from_env({ENV_PRECISION: "fp32"}) == "fp32"
    with pytest.raises(TalkingHeadError, match=ENV_PRECISION):
        precision_from_env({ENV_PRECISION: "half"})


def test_auto_is_fp32_without_bf16_hardware(fresh_policy) -> None:
    def no_benchmark() -> float:
        raise AssertionError("auto must not benchmark a CPU without bf16 flags")

    fresh_policy.setattr(precision_module, "cpu_bf16_flags", lambda: ())
    fresh_policy.setattr(precision_module, "measure_cpu_bf16_speedup", no_benchmark)
    auto = resolve_precision("auto", "cpu")
    assert auto.dtype == torch.float32 and not auto.channels_last and "no bf16" in auto.reason
    forced = resolve_precision("bf16", "cpu")  # asked for: works anyway (emulated)
    assert forced.is_bf16 and forced.channels_last and "emulated" in forced.reason
    assert resolve_precision("fp32", "cpu").name == "fp32"


@pytest.mark.parametrize(("speedup", "expected"), [(3.0, "bf16"), (0.5, "fp32")])
def test_auto_follows_the_measurement(fresh_policy, speedup, expected) -> None:
    fresh_policy.setattr(precision_module, "cpu_bf16_flags", lambda: ("amx_bf16",))
    fresh_policy.setattr(precision_module, "measure_cpu_bf16_speedup", lambda task="render": speedup)
    auto = resolve_precision("auto", "cpu")
    assert auto.name == expected and "amx_bf16" in auto.reason


def test_auto_decides_rendering_and_training_apart(fresh_policy, caplog) -> None:
    measured = []

    def measure(task: str = "render") -> float:
        measured.append(task)
        return {"render": 1.1, "train": 2.0}[task]

    fresh_policy.setattr(precision_module, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    fresh_policy.setattr(precision_module, "measure_cpu_bf16_speedup", measure)
    with caplog.at_level("INFO", logger="talking_head.nets.precision"):
        render = resolve_precision("auto", "cpu")
        train = resolve_precision("auto", "cpu", task="train")
        assert resolve_precision("auto", "cpu", task="train") is train  # decided (and logged) once
    assert render.name == "fp32" and render.task == "render" and "1.10×" in render.reason
    assert train.name == "bf16" and train.task == "train" and train.channels_last
    assert measured == ["render", "train"]
    assert len([r for r in caplog.records if "precision auto" in r.getMessage()]) == 2  # once per task
    assert resolve_precision(render, "cpu", task="train") is train  # a Precision is resolved again for the other task
    with pytest.raises(ValueError, match="task"):
        resolve_precision("auto", "cpu", task="inference")


def test_the_measurement_is_the_median_of_interleaved_rounds(monkeypatch) -> None:
    """Runs alternate fp32, bf16, fp32, ...; one slow bf16 round (a busy machine) does not change the verdict."""
    clock = [0.0]
    order = []
    bf16_costs = iter([1.0, 5.0, 5.0, 100.0, 5.0, 5.0])  # warm-up, then 5 rounds with one outlier

    def runner(task, precision):
        def run() -> None:
            order.append(precision.name)
            clock[0] += 10.0 if precision.name == "fp32" else next(bf16_costs)

        return run

    monkeypatch.setattr(precision_module, "_task_runner", runner)
    monkeypatch.setattr(precision_module.time, "perf_counter", lambda: clock[0])
    assert precision_module.measure_bf16_speedup("render", rounds=5) == pytest.approx(2.0)
    assert order == ["fp32", "bf16"] * 6


@pytest.mark.parametrize("task", ["render", "train"])
def test_the_measurement_runs_the_generator_each_way(task) -> None:
    speedup = precision_module.measure_bf16_speedup(task, rounds=1)
    assert math.isfinite(speedup) and speedup > 0


def test_none_reads_the_environment(fresh_policy) -> None:
    fresh_policy.setenv(ENV_PRECISION, "bf16")
    assert resolve_precision(None, "cpu").is_bf16
    fresh_policy.setenv(ENV_PRECISION, "fp32")
    assert resolve_precision(None, "cpu").name == "fp32"
    bf16 = resolve_precision("bf16", "cpu")
    assert resolve_precision(bf16, "cpu") is bf16  # a resolved Precision passes through


def test_bf16_inference_leaves_the_network_alone() -> None:
    torch.manual_seed(0)
    generator = Generator(ModelConfig.preset("tiny")).eval()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    bf16 = resolve_precision("bf16", "cpu")
    assert resolve_precision("fp32", "cpu").for_inference(generator) is generator
    wrapped = bf16.for_inference(generator)
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    warp = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        out = wrapped(y, adain_params=torch.zeros(generator.n_adain_params), warp=warp)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 64, 64)
    assert bf16.for_inference(generator) is wrapped  # cached
    state = generator.state_dict()
    assert all(torch.equal(state[k], before[k]) for k in before)  # spectral norms still on, weights fp32
    generator.train()
    generator(y, adain_params=torch.zeros(generator.n_adain_params), warp=warp)  # a power iteration moves u and v
    assert bf16.for_inference(generator) is not wrapped  # so the cached copy is stale and remade


def test_bf16_rendering_matches_fp32(tmp_path) -> None:
    from talking_head.animation import pipeline
    from talking_head.animation.finetune import finetune_person

    model = pipeline.load_model(make_tiny_weights(tmp_path / "weights"), device="cpu")
    person = pipeline.embed_person(model, [ASTRONAUT])
    points = moving_track(person.source_landmarks, 6)
    for who in (person, finetune_person(model, person, 2, precision="fp32")):  # base G, then G'
        fp32 = list(pipeline.render_landmarks(model, who, points, batch_size=4, precision="fp32"))
        bf16 = list(pipeline.render_landmarks(model, who, points, batch_size=4, precision="bf16"))
        scores = [psnr(a, b) for a, b in zip(fp32, bf16)]
        assert len(scores) == 6 and min(scores) >= 30.0, scores


# The paper's G on the tiny sizes: it starts far from the target, so 100 steps show learning
# (a warp-guided G starts at the warp, whose content loss is already low).
_TINY_PAINT = dataclasses.replace(ModelConfig.preset("tiny"), warp_guided=False, generator_skips=False)


def _content_loss_drop(data, run, precision: str) -> float:
    """Mean content loss of the first 10 of 100 steps minus that of the last 10."""
    config = TrainConfig(
        k_shots=2,
        batch_size=2,
        d_steps=1,
        max_steps=100,
        lr_eg=5e-4,
        log_every=1,
        sample_every=0,
        ckpt_every=1000,
        seed=7,
    )
    train(
        data, run, _TINY_PAINT, config, LossConfig(content_loss="pixel"), precision=precision
    )
    losses = [json.loads(line)["loss_cnt"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(losses) == 100 and np.isfinite(losses).all()
    return float(np.mean(losses[:10]) - np.mean(losses[-10:]))


@pytest.mark.slow
def test_bf16_training_lowers_the_content_loss_like_fp32(tmp_path) -> None:
    data = make_prepared_dataset(tmp_path / "data", num_videos=1, num_frames=8, size=64)
    fp32 = _content_loss_drop(data, tmp_path / "fp32", "fp32")
    bf16 = _content_loss_drop(data, tmp_path / "bf16", "bf16")
    assert fp32 > 0, fp32
    assert abs(bf16 - fp32) <= 0.1 * fp32, (fp32, bf16)


def test_auto_can_first_be_resolved_inside_inference_mode(fresh_policy) -> None:
    """Rendering resolves its precision under torch.inference_mode(); the measurement must still work."""
    fresh_policy.setattr(precision_module, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    fresh_policy.setattr(precision_module, "AUTO_ROUNDS", 1)
    precision_module._cpu_bf16_speedup.cache_clear()
    with torch.inference_mode():
        for task in ("render", "train"):
            assert resolve_precision("auto", "cpu", task=task).name in ("bf16", "fp32")
