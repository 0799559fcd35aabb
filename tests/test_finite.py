"""The non-finite guard: a step with a NaN/inf loss is skipped; several in a row restore the last finite state.

Non-finite values are injected by wrapping the extra loss terms (the SSIM
term is where bf16 made them in the wild) so that chosen steps return NaN.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import make_prepared_dataset
from _tiny_weights import make_tiny_weights

from talking_head.animation import finetune as finetune_module
from talking_head.animation.finetune import finetune_person
from talking_head.animation.pipeline import embed_person, load_model
from talking_head.nets import losses as losses_module
from talking_head.nets.config import ModelConfig
from talking_head.nets.finite import MAX_NONFINITE_STEPS, all_finite, step_if_finite
from talking_head.nets.losses import LossConfig
from talking_head.training import steps as steps_module
from talking_head.training.config import TrainConfig
from talking_head.training.train import train

ASTRONAUT = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"


def _nan_on_calls(monkeypatch: pytest.MonkeyPatch, module, bad_calls: set[int]) -> list[int]:
    """Make ``module.weighted_extra_terms`` add a NaN term on the given calls (1-based); returns the call log."""
    calls: list[int] = []
    original = losses_module.weighted_extra_terms

    def injected(config, pred, target, points):
        calls.append(len(calls) + 1)
        terms = original(config, pred, target, points)
        if calls[-1] in bad_calls:
            terms["injected"] = pred.float().mean() * float("nan")
        return terms

    monkeypatch.setattr(module, "weighted_extra_terms", injected)
    return calls


def test_a_non_finite_loss_skips_the_step_and_leaves_the_optimizer_alone() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight], lr=0.1)
    (weight * 2).sum().backward()
    assert step_if_finite(optimizer, (weight * 2).sum())  # a normal step: moments exist now
    before = weight.detach().clone()
    moments = {k: v.clone() if torch.is_tensor(v) else v for k, v in optimizer.state[weight].items()}
    optimizer.zero_grad()
    loss = (weight * float("nan")).sum()
    loss.backward()
    assert not step_if_finite(optimizer, loss)
    assert torch.equal(weight.detach(), before) and weight.grad is None
    for key, value in optimizer.state[weight].items():
        assert torch.equal(value, moments[key]) if torch.is_tensor(value) else value == moments[key]
    # A finite loss with an infinite gradient is skipped too.
    optimizer.zero_grad()
    weight.grad = torch.tensor([1.0, float("inf"), 0.0])
    assert not step_if_finite(optimizer, torch.tensor(1.0))
    assert torch.equal(weight.detach(), before)
    assert all_finite([before]) and not all_finite([torch.tensor([0.0, float("nan")])])


@pytest.fixture(scope="module")
def tiny_person():
    weights = make_tiny_weights(Path(__import__("tempfile").mkdtemp()) / "weights")
    model = load_model(weights, device="cpu")
    return model, embed_person(model, [ASTRONAUT])


def test_fine_tuning_restores_the_last_finite_state_and_says_so(tiny_person, monkeypatch) -> None:
    model, person = tiny_person
    clean = finetune_person(model, person, 2, precision="fp32")
    assert clean.finetune_notice == ""
    first_bad = 3
    calls = _nan_on_calls(monkeypatch, finetune_module, set(range(first_bad, 100)))
    seen = []
    tuned = finetune_person(model, person, 10, callback=lambda s, t, l: seen.append(s), precision="fp32")
    stop = first_bad + MAX_NONFINITE_STEPS - 1
    assert len(calls) == stop  # it stopped early, after MAX_NONFINITE_STEPS bad steps in a row
    assert seen == list(range(1, stop))
    assert tuned.finetune_notice == (
        f"fine-tuning stopped at step {stop} of 10: numerical problem; rendered with the state of step {first_bad - 1}"
    )
    # The state is that of the last finite step: the same as 2 clean steps, bit for bit.
    assert torch.equal(tuned.adain_params, clean.adain_params)
    clean_state = clean.generator.state_dict()
    assert all(torch.equal(v, clean_state[k]) for k, v in tuned.generator.state_dict().items())


def test_a_single_bad_step_is_skipped_and_fine_tuning_goes_on(tiny_person, monkeypatch) -> None:
    model, person = tiny_person
    _nan_on_calls(monkeypatch, finetune_module, {2})
    tuned = finetune_person(model, person, 4, precision="fp32")
    assert tuned.finetune_notice == "fine-tuning skipped 1 of 4 steps (numerical problem)"
    assert tuned.finetune_steps == 4
    assert all_finite([tuned.adain_params, *tuned.generator.state_dict().values()])
    assert not torch.equal(tuned.adain_params, person.adain_params)  # the other 3 steps trained


def test_the_status_line_and_the_cli_say_fine_tuning_stopped(tiny_person, monkeypatch, tmp_path, capsys) -> None:
    from talking_head.__main__ import main
    from talking_head.face.landmarks import get_detector
    from talking_head.web.inputs import RenderRequest
    from talking_head.web.job import prepare_job, run_job
    from talking_head.web.limits import AppLimits

    model, _ = tiny_person
    _nan_on_calls(monkeypatch, finetune_module, set(range(1, 100)))
    motion = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"
    detector = get_detector("dlib")
    request = RenderRequest(photos=(str(ASTRONAUT),), driving=str(motion), max_seconds=0.2, steps=5)
    job = prepare_job(request, AppLimits(max_driving_seconds=1.0), detector, model.config.image_size)
    outcome = run_job(model, job, detector, output_dir=tmp_path)
    expected = f"fine-tuning stopped at step {MAX_NONFINITE_STEPS} of 5: numerical problem; rendered with the state of step 0"
    assert expected in outcome.status
    assert outcome.video.exists()

    weights = make_tiny_weights(tmp_path / "weights")
    code = main(
        ["animate", "--weights", str(weights), "--photos", str(ASTRONAUT), "--driving", str(motion),
         "--steps", "5", "--max-seconds", "0.2", "--out", str(tmp_path / "out.mp4"), "--landmarks", "dlib"]
    )  # fmt: skip
    assert code == 0
    assert expected in capsys.readouterr().err


def test_training_skips_non_finite_updates_and_restores_the_last_checkpoint(tmp_path, monkeypatch, caplog) -> None:
    data = make_prepared_dataset(tmp_path / "data", num_videos=1, num_frames=6, size=64)
    config = TrainConfig(
        k_shots=2, batch_size=1, d_steps=1, max_steps=10, log_every=1, sample_every=0, ckpt_every=2, seed=7
    )
    # E/G updates 5, 6, 7 are non-finite: after the third, the checkpoint of step 4 comes back.
    calls = _nan_on_calls(monkeypatch, steps_module, {5, 6, 7})
    loss = LossConfig(content_loss="pixel", ssim_weight=1.0)
    with caplog.at_level(logging.WARNING, logger="talking_head.training.train"):
        result = train(data, tmp_path / "run", ModelConfig.preset("tiny"), config, loss, precision="fp32")
    assert "restored the checkpoint of step 4" in caplog.text
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    skipped = [line["step"] for line in stats if line["eg_skipped"] > 0]
    assert skipped == [5, 6, 7]
    assert result.step == 10 and len(calls) == 13  # steps 5-7 were done again after the restore
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert all_finite(checkpoint["generator"].values()) and all_finite(checkpoint["embedder"].values())
    assert np.isfinite([line["loss_cnt"] for line in stats[-3:]]).all()
