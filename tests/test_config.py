"""ModelConfig: presets, validation and JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from talking_head.errors import WeightsError
from talking_head.nets.config import PRESETS, ModelConfig


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_round_trips_through_json(name: str, tmp_path: Path) -> None:
    config = ModelConfig.preset(name)
    config.to_json(tmp_path / "config.json")
    loaded = ModelConfig.from_json(tmp_path / "config.json")
    assert loaded == config
    assert isinstance(loaded.embedder_channels, tuple)  # JSON lists come back as tuples
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_paper_preset_matches_design() -> None:
    config = ModelConfig.preset("paper")
    assert config.image_size == 256 and config.embedding_dim == 512
    assert config.embedder_channels[0] == 64 and config.embedder_channels[-1] == 512
    assert len(config.generator_down_channels) == 4 and config.generator_bottleneck_blocks == 4
    assert config.generator_down_attention_size == 32 and config.generator_up_attention_size == 64


def test_cpu_preset_keeps_paper_topology_at_smaller_width() -> None:
    paper, cpu = ModelConfig.preset("paper"), ModelConfig.preset("cpu")
    assert cpu.image_size == 256
    assert len(cpu.embedder_channels) == len(paper.embedder_channels)
    assert len(cpu.generator_up_channels) == len(paper.generator_up_channels)
    assert sum(cpu.generator_up_channels) < sum(paper.generator_up_channels)


def test_config_is_frozen() -> None:
    config = ModelConfig.preset("tiny")
    with pytest.raises(AttributeError):
        config.image_size = 128  # type: ignore[misc]


def test_unknown_keys_are_named() -> None:
    data = ModelConfig.preset("tiny").to_dict() | {"num_layers": 3}
    with pytest.raises(ValueError, match="num_layers"):
        ModelConfig.from_dict(data)


def test_unknown_preset_lists_choices() -> None:
    with pytest.raises(ValueError, match="paper"):
        ModelConfig.preset("huge")


def test_inconsistent_widths_are_rejected() -> None:
    with pytest.raises(ValueError, match="embedder_channels"):
        ModelConfig(image_size=64, embedder_channels=(8, 16, 32))  # 64 → 4 needs 4 blocks


def test_bad_json_raises_weights_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(WeightsError, match="config.json"):
        ModelConfig.from_json(path)
    path.write_text(json.dumps({"image_size": 256, "colour": "red"}), encoding="utf-8")
    with pytest.raises(WeightsError, match="colour"):
        ModelConfig.from_json(path)


def test_config_without_warp_fields_loads_as_the_painting_generator(tmp_path: Path) -> None:
    """A config.json written before warp guidance existed is the model it was."""
    data = ModelConfig.preset("tiny").to_dict()
    del data["warp_guided"], data["generator_skips"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    loaded = ModelConfig.from_json(path)
    assert loaded.warp_guided is False and loaded.generator_skips is False


def test_paper_preset_is_as_published_and_shipped_presets_are_warp_guided() -> None:
    import torch

    from talking_head.nets.model import TalkingHeadModel

    paper = ModelConfig.preset("paper")
    assert not paper.warp_guided and not paper.generator_skips
    assert ModelConfig.preset("cpu").warp_guided and ModelConfig.preset("paper-warp").warp_guided
    with torch.device("meta"):
        model = TalkingHeadModel(paper)
    # The counts measured before warp guidance was added: unchanged.
    counts = [sum(p.numel() for p in part.parameters()) for part in (model.embedder, model.generator, model.discriminator)]
    assert counts == [14_381_633, 37_805_509, 19_101_762]
    assert sum(p.numel() for p in model.generator.projection.parameters()) == 6_684_672
