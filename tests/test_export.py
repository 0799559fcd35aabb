"""Export a run to a weights folder and load it back; the push command's dry run."""

from __future__ import annotations

import pytest
import torch
from _synthetic import make_prepared_dataset

from talking_head.__main__ import main
from talking_head.errors import WeightsError
from talking_head.nets.config import ModelConfig
from talking_head.nets.losses import LossConfig
from talking_head.nets.model import TalkingHeadModel
from talking_head.training.checkpoint import load_checkpoint
from talking_head.training.config import TrainConfig
from talking_head.training.hub import export_run, push_folder, weights_files
from talking_head.training.train import train

TINY = ModelConfig.preset("tiny")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    data = make_prepared_dataset(root / "data", num_videos=2, num_frames=4, size=64)
    config = TrainConfig(k_shots=2, batch_size=1, d_steps=1, max_steps=2, sample_every=0, ckpt_every=2)
    train(data, root / "run", TINY, config, LossConfig(content_loss="pixel"))
    torch.set_num_threads(threads)
    return root / "run"


def _same_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(value, state[key]) for key, value in module.state_dict().items())


def test_export_round_trip(run_dir, tmp_path):
    folder = export_run(run_dir, tmp_path / "weights")
    names = [name for name, _ in weights_files(folder)]
    assert names == [
        "LICENSE",
        "README.md",
        "config.json",
        "discriminator.safetensors",
        "embedder.safetensors",
        "generator.safetensors",
    ]
    # The weights' terms travel with them, and the card's front matter says the same.
    assert "non-commercial" in (folder / "LICENSE").read_text()
    assert "license: other\nlicense_name: research-non-commercial" in (folder / "README.md").read_text()
    model = TalkingHeadModel.from_pretrained(folder)
    assert model.config == TINY and model.discriminator.num_videos == 0  # W stays in the training state
    checkpoint = load_checkpoint(run_dir)
    # The EMA networks are what is exported, not the raw ones.
    assert _same_state(model.embedder, checkpoint["ema_embedder"])
    assert _same_state(model.generator, checkpoint["ema_generator"])
    assert not _same_state(model.generator, checkpoint["generator"])
    generic = {k: v for k, v in checkpoint["discriminator"].items() if not k.startswith("video_table.")}
    assert _same_state(model.discriminator, generic)
    # The loaded model renders a frame.
    with torch.no_grad():
        y = torch.zeros(1, 3, 64, 64)
        e = model.embedder(torch.zeros(1, 3, 64, 64), y)
        assert model.generator(y, e, warp=torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    card = (folder / "README.md").read_text()
    for fact in (
        "tiny preset",
        "FT variant",
        "| steps | 2 ",
        "pixel",
        "2 clips of 2 identities kept",
        "EMA of E and G",
    ):
        assert fact in card, fact


def test_export_raw_weights(run_dir, tmp_path):
    model = TalkingHeadModel.from_pretrained(export_run(run_dir, tmp_path / "raw", use_ema=False))
    assert _same_state(model.generator, load_checkpoint(run_dir)["generator"])


def test_export_fp16_halves_the_files_and_loads_back(run_dir, tmp_path):
    full = export_run(run_dir, tmp_path / "fp32")
    half = export_run(run_dir, tmp_path / "fp16", half=True)
    full_bytes = (full / "generator.safetensors").stat().st_size
    half_bytes = (half / "generator.safetensors").stat().st_size
    assert half_bytes < 0.6 * full_bytes
    model = TalkingHeadModel.from_pretrained(half)
    assert next(model.generator.parameters()).dtype == torch.float32


def test_export_and_push_dry_run_cli(run_dir, tmp_path, capsys):
    folder = tmp_path / "weights"
    assert main(["export", str(run_dir), "--out", str(folder)]) == 0
    assert "generator.safetensors" in capsys.readouterr().out
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_text("local only")
    assert main(["push", str(folder), "--repo-id", "someone/talking-head-test", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would upload 6 files" in out and "someone/talking-head-test" in out and "junk" not in out
    files = dict(push_folder(folder, "someone/x", dry_run=True))
    assert files["config.json"] == (folder / "config.json").stat().st_size


def test_push_rejects_a_folder_without_weights(tmp_path, capsys):
    with pytest.raises(WeightsError, match="export"):
        push_folder(tmp_path, "someone/x", dry_run=True)
    assert main(["push", str(tmp_path), "--repo-id", "someone/x", "--dry-run"]) == 2
    assert "not a weights folder" in capsys.readouterr().err


def test_export_of_a_folder_without_checkpoint(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "w")]) == 2
    assert "train first" in capsys.readouterr().err
