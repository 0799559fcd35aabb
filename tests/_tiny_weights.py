"""Tiny random weights for tests: a real weights folder in a few hundred kB.

Other test modules (app, evaluation) import :func:`make_tiny_weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from talking_head.nets.config import ModelConfig
from talking_head.nets.model import TalkingHeadModel


def make_tiny_weights(directory: str | Path, seed: int = 0, preset: str = "tiny") -> Path:
    """Build ``TalkingHeadModel(ModelConfig.preset(preset))`` with seeded random weights and save it to ``directory``.

    Returns the folder (``config.json`` + safetensors), loadable with
    ``TalkingHeadModel.from_pretrained`` or ``pipeline.load_model``.
    """
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = TalkingHeadModel(ModelConfig.preset(preset))
    finally:
        torch.random.set_rng_state(generator_state)  # do not disturb the caller's random stream
    return model.save_pretrained(Path(directory))
