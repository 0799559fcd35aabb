"""TalkingHeadModel weights: save/load round trip, fp16 storage, Hub cache, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from talking_head.errors import WeightsError
from talking_head.nets.config import ModelConfig
from talking_head.nets.model import WEIGHT_FILES, TalkingHeadModel

CONFIG = ModelConfig.preset("tiny")
S = CONFIG.image_size


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.rand(2, 3, S, S, generator=g) * 2 - 1, torch.rand(2, 3, S, S, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def trained_model() -> TalkingHeadModel:
    """A tiny model whose spectral-norm vectors moved away from their init (train-mode passes)."""
    torch.manual_seed(0)
    model = TalkingHeadModel(CONFIG, num_videos=3)
    x, y = torch.rand(2, 3, S, S), torch.rand(2, 3, S, S)
    with torch.no_grad():
        model.discriminator.w0.normal_()
        model.discriminator.b.fill_(0.25)
        model.generator.warp_head.weight.normal_(0, 0.1)  # off its zero init, so G's output is not just the warp
        for _ in range(2):  # each train-mode forward runs a power iteration
            e = model.embedder(x, y)
            model.discriminator(model.generator(y, e=e, warp=x), y, video_index=torch.tensor([0, 2]))
    return model.eval()


@pytest.fixture(scope="module")
def saved_dir(trained_model: TalkingHeadModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model.save_pretrained(tmp_path_factory.mktemp("weights") / "tiny")


def _outputs(model: TalkingHeadModel, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        e = model.embedder(x, y)
        score, feats = model.discriminator(x, y)  # generic D: Vᵀ w0 + b
        return [e, model.generator(y, e=e, warp=x), score, feats[-1]]


def test_folder_layout_and_no_per_video_table(saved_dir: Path) -> None:
    assert sorted(p.name for p in saved_dir.iterdir()) == sorted(["config.json", *WEIGHT_FILES.values()])
    assert ModelConfig.from_json(saved_dir / "config.json") == CONFIG
    d_keys = load_file(str(saved_dir / "discriminator.safetensors")).keys()
    assert "w0" in d_keys and "b" in d_keys
    assert not any("video_table" in k for k in d_keys)
    g_keys = load_file(str(saved_dir / "generator.safetensors")).keys()
    assert any(k.endswith("_u") for k in g_keys)  # spectral-norm state is kept
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in g_keys)


def test_round_trip_gives_identical_outputs(trained_model, saved_dir, inputs) -> None:
    loaded = TalkingHeadModel.from_pretrained(saved_dir)
    assert loaded.config == CONFIG and not loaded.training
    assert loaded.discriminator.num_videos == 0
    for before, after in zip(_outputs(trained_model, *inputs), _outputs(loaded, *inputs), strict=True):
        assert torch.equal(before, after)


def test_wrapped_modules_save_without_prefixes(trained_model, tmp_path, inputs) -> None:
    class Wrapper(torch.nn.Module):  # stands in for DDP / torch.compile's wrapper naming
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, *args, **kwargs):
            return self.module(*args, **kwargs)

    model = TalkingHeadModel(CONFIG)
    model.load_state_dict(trained_model.state_dict(), strict=False)
    model.generator = Wrapper(trained_model.generator)  # type: ignore[assignment]
    model.save_pretrained(tmp_path)
    assert not any(k.startswith("module.") for k in load_file(str(tmp_path / "generator.safetensors")))
    loaded = TalkingHeadModel.from_pretrained(tmp_path)
    x, y = inputs
    with torch.no_grad():
        e = trained_model.embedder(x, y)
        assert torch.equal(trained_model.generator(y, e=e, warp=x), loaded.generator(y, e=e, warp=x))


def test_fp16_storage_loads_into_fp32_model(trained_model, tmp_path, inputs) -> None:
    trained_model.save_pretrained(tmp_path, dtype=torch.float16)
    stored = load_file(str(tmp_path / "generator.safetensors"))
    assert all(t.dtype == torch.float16 for t in stored.values() if t.is_floating_point())
    loaded = TalkingHeadModel.from_pretrained(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        x, y = inputs
        e = trained_model.embedder(x, y)
        diff = (loaded.generator(y, e=e, warp=x) - trained_model.generator(y, e=e, warp=x)).abs()
    assert diff.mean() < 5e-3 and diff.max() < 0.1  # fp16 rounding of the weights, nothing more
    assert TalkingHeadModel.from_pretrained(tmp_path, dtype=torch.float16).generator.warp_head.bias.dtype == torch.float16


def _copy(saved_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_dir, tmp_path / "copy"))


def test_missing_folder_raises_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        TalkingHeadModel.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("filename", ["config.json", *WEIGHT_FILES.values()])
def test_missing_file_is_named(saved_dir, tmp_path, filename) -> None:
    folder = _copy(saved_dir, tmp_path)
    (folder / filename).unlink()
    with pytest.raises(WeightsError, match=filename.replace(".", r"\.")):
        TalkingHeadModel.from_pretrained(folder)


def test_corrupt_safetensors_is_named(saved_dir, tmp_path) -> None:
    folder = _copy(saved_dir, tmp_path)
    (folder / "generator.safetensors").write_bytes(b"\x00garbage, not safetensors")
    with pytest.raises(WeightsError, match=r"generator\.safetensors"):
        TalkingHeadModel.from_pretrained(folder)


def test_truncated_safetensors_is_named(saved_dir, tmp_path) -> None:
    folder = _copy(saved_dir, tmp_path)
    data = (folder / "embedder.safetensors").read_bytes()
    (folder / "embedder.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"embedder\.safetensors"):
        TalkingHeadModel.from_pretrained(folder)


def test_config_mismatch_is_named(saved_dir, tmp_path) -> None:
    folder = _copy(saved_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["generator_up_channels"] = [32, 16, 16, 16]  # widths the files were not saved with
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"generator\.safetensors.*shape"):
        TalkingHeadModel.from_pretrained(folder)


def test_missing_key_is_named(saved_dir, tmp_path) -> None:
    folder = _copy(saved_dir, tmp_path)
    tensors = load_file(str(folder / "discriminator.safetensors"))
    del tensors["w0"]
    save_file(tensors, str(folder / "discriminator.safetensors"))
    with pytest.raises(WeightsError, match=r"discriminator\.safetensors.*w0"):
        TalkingHeadModel.from_pretrained(folder)


def test_bad_config_json_is_named(saved_dir, tmp_path) -> None:
    folder = _copy(saved_dir, tmp_path)
    (folder / "config.json").write_text("[1, 2")
    with pytest.raises(WeightsError, match=r"config\.json"):
        TalkingHeadModel.from_pretrained(folder)


def _populate_hub_cache(cache: Path, repo_id: str, saved_dir: Path, commit: str) -> None:
    """Lay out files the way huggingface_hub caches a download, without network."""
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(saved_dir, repo_folder / "snapshots" / commit)
    (repo_folder / "refs").mkdir(parents=True)
    (repo_folder / "refs" / "main").write_text(commit)


def test_from_pretrained_finds_hub_cache_offline(saved_dir, tmp_path, inputs, monkeypatch, trained_model) -> None:
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    _populate_hub_cache(cache, "org/tiny-talking-head", saved_dir, commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = TalkingHeadModel.from_pretrained("org/tiny-talking-head")
    for before, after in zip(_outputs(trained_model, *inputs), _outputs(loaded, *inputs), strict=True):
        assert torch.equal(before, after)
    pinned = TalkingHeadModel.from_pretrained("org/tiny-talking-head", revision=commit)
    assert pinned.config == CONFIG
    with pytest.raises(WeightsError, match="org/missing"):
        TalkingHeadModel.from_pretrained("org/missing")


def test_saved_weights_are_world_readable(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = TalkingHeadModel(ModelConfig.preset("tiny")).save_pretrained(tmp_path / "weights")
    finally:
        os.umask(old)
    for name in WEIGHT_FILES.values():
        mode = stat.S_IMODE((folder / name).stat().st_mode)
        assert mode & 0o044 == 0o044, f"{name} has mode {oct(mode)}"
