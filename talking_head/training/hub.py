"""Export a training run to a weights folder, and upload a weights folder to the Hugging Face Hub.

A weights folder (DESIGN §4) holds ``config.json``, ``embedder.safetensors``,
``generator.safetensors``, ``discriminator.safetensors`` (θ, w0, b; never the
per-video W) and a ``README.md`` model card. :func:`export_run` fills it with
the EMA of E and G from a run's ``checkpoint.pt`` (the networks the sample
grids show) and D's person-generic part; ``TalkingHeadModel.from_pretrained``
loads it back.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from talking_head.errors import TalkingHeadError, WeightsError
from talking_head.nets.config import PRESETS, ModelConfig
from talking_head.nets.discriminator import VIDEO_TABLE_PREFIX
from talking_head.nets.model import CONFIG_NAME, WEIGHT_FILES, TalkingHeadModel
from talking_head.training.checkpoint import load_checkpoint
from talking_head.training.data import read_manifest
from talking_head.training.run_folder import CONFIG_NAME as RUN_CONFIG_NAME
from talking_head.training.run_folder import STATS_NAME

logger = logging.getLogger(__name__)

MODEL_CARD_NAME = "README.md"


def export_run(run_dir: str | Path, out_dir: str | Path, use_ema: bool = True, half: bool = False) -> Path:
    """Write the weights folder of the run in ``run_dir`` (its latest checkpoint) to ``out_dir``.

    ``use_ema=False`` exports the raw E and G instead of their EMA; ``half=True``
    stores the tensors as float16 (half the size; they load back into float32).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    checkpoint = load_checkpoint(run_dir)
    model = model_from_checkpoint(checkpoint, use_ema, name=str(run_dir))
    model.save_pretrained(out_dir, dtype=torch.float16 if half else None)
    card = model_card(checkpoint, _read_run_config(run_dir), _last_stats(run_dir / STATS_NAME), use_ema)
    (out_dir / MODEL_CARD_NAME).write_text(card, encoding="utf-8")
    (out_dir / WEIGHTS_LICENCE_NAME).write_text(WEIGHTS_LICENCE, encoding="utf-8")
    return out_dir


WEIGHTS_LICENCE_NAME = "LICENSE"
WEIGHTS_LICENCE = """Terms of use of the model weights in this folder
================================================

These weights are not covered by the Apache-2.0 licence of the talking-head
code. They may be used, copied and shared for research and other
non-commercial purposes only: they were trained on talking-face clips
collected for research (the people shown and the source datasets allow
research use only), with landmarks from dlib's 68-point shape predictor,
whose iBUG 300-W training data excludes commercial use. Never present a
generated video as a real recording; only animate people who agreed to it.
"""


def model_from_checkpoint(
    checkpoint: dict[str, Any], use_ema: bool = True, name: str = "the run"
) -> TalkingHeadModel:
    """E, G (their EMA unless ``use_ema=False``) and D's generic part of a training checkpoint, in eval mode.

    ``WeightsError`` (naming ``name``) when the tensors do not fit the checkpoint's model config.
    """
    model = TalkingHeadModel(ModelConfig.from_dict(checkpoint["model_config"]))
    prefix = "ema_" if use_ema else ""
    try:
        model.embedder.load_state_dict(checkpoint[prefix + "embedder"])
        model.generator.load_state_dict(checkpoint[prefix + "generator"])
        generic = {
            k: v for k, v in checkpoint["discriminator"].items() if not k.startswith(VIDEO_TABLE_PREFIX)
        }
        model.discriminator.load_state_dict(generic)
    except (KeyError, RuntimeError) as err:
        raise WeightsError(f"{name} has a checkpoint that does not match its model config ({err})") from err
    return model.eval()


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / RUN_CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _last_stats(path: Path) -> dict[str, Any]:
    try:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        return json.loads(lines[-1]) if lines else {}
    except (OSError, json.JSONDecodeError):
        return {}


def preset_name(config: ModelConfig) -> str:
    """The name of the preset equal to ``config``, or ``"custom"``."""
    return next((name for name, preset in PRESETS.items() if preset == config), "custom")


def _manifest_counts(data_dir: str | None) -> str:
    if not data_dir:
        return "unknown"
    try:
        latest = {e["source"]: e for e in read_manifest(data_dir)}
    except TalkingHeadError:
        return "manifest not available where the export ran"
    kept = [e for e in latest.values() if e.get("skipped") is None]
    identities = len({e["identity"] for e in kept})
    frames = sum(e.get("frames_used", 0) for e in kept)
    skipped = len(latest) - len(kept)
    return f"{len(kept)} clips of {identities} identities kept ({frames} frames), {skipped} skipped"


def model_card(
    checkpoint: dict[str, Any], run_config: dict[str, Any], last_stats: dict[str, Any], use_ema: bool = True
) -> str:
    """A README.md stub for the weights folder: what was trained, on what, for how long."""
    config = ModelConfig.from_dict(checkpoint["model_config"])
    train_config = checkpoint["train_config"]
    hours = float(checkpoint.get("wall_seconds", 0.0)) / 3600
    variant = train_config.get("variant", "?")
    stats = ", ".join(f"{k} {v:.4g}" for k, v in last_stats.items() if k.startswith(("loss_", "d_")))
    if variant == "ft":
        variant_note = "trained with the embedding-match loss; fine-tune per person"
    else:
        variant_note = "feed-forward, no match loss"
    batch = (
        f"batch {train_config.get('batch_size')} × {checkpoint.get('world_size', 1)} processes, "
        f"K = {train_config.get('k_shots')}"
    )
    return f"""---
license: other
license_name: research-non-commercial
license_link: LICENSE
tags:
- talking-head
- few-shot
- gan
---

# Talking-head weights ({preset_name(config)} preset, {variant.upper()} variant)

Few-shot talking-head networks after Zakharov et al., *Few-Shot Adversarial
Learning of Realistic Neural Talking Head Models* (ICCV 2019): embedder E,
generator G (with the AdaIN projection P) and the person-generic part of the
discriminator D (θ, w0, b; the per-video matrix W is training state and is
not included). Load with
`TalkingHeadModel.from_pretrained("<this folder or repo id>")`.

| | |
| --- | --- |
| preset | {preset_name(config)} ({config.image_size}×{config.image_size}, N = {config.embedding_dim}) |
| variant | {variant} ({variant_note}) |
| steps | {checkpoint["step"]} ({batch}) |
| weights | {"EMA of E and G" if use_ema else "raw E and G"} (EMA decay {train_config.get("ema_decay")}) |
| content loss | {checkpoint.get("content_loss_kind", run_config.get("content_loss_kind", "?"))} |
| training data | {_manifest_counts(run_config.get("data"))} |
| hardware | {run_config.get("device", "?")} × {checkpoint.get("world_size", 1)} |
| wall time | {hours:.2f} h |
| last stats | {stats or "n/a"} |

Metrics: not measured yet (run `python -m talking_head evaluate`).

## Data and responsible use

Trained on talking-face clips collected for research and testing only; the
portrait rights of the people shown and the terms of the source datasets
apply, so these weights are for research use. Only animate people who agreed
to it and never present generated video as real.
"""


def weights_files(folder: str | Path) -> list[tuple[str, int]]:
    """``(relative path, size in bytes)`` of every file in a weights folder, sorted.

    Raises ``WeightsError`` when ``folder`` is not a weights folder.
    """
    folder = Path(folder)
    missing = [name for name in (CONFIG_NAME, *WEIGHT_FILES.values()) if not (folder / name).is_file()]
    if missing:
        raise WeightsError(
            f"{folder} is not a weights folder (missing {', '.join(missing)}); "
            "make one with `python -m talking_head export RUN --out DIR`"
        )
    return sorted(
        (p.relative_to(folder).as_posix(), p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def push_folder(
    folder: str | Path,
    repo_id: str,
    dry_run: bool = False,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload talking-head weights",
    token: str | None = None,
) -> list[tuple[str, int]]:
    """Upload a weights folder to the Hub model repo ``repo_id`` (created if needed); return the files sent.

    ``dry_run`` only lists the files (no network). Hidden files are never sent.
    """
    files = weights_files(folder)
    if dry_run:
        return files
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            commit_message=commit_message,
            allow_patterns=[name for name, _ in files],
        )
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise TalkingHeadError(
            f"uploading {folder} to {repo_id} failed ({err}); check the network, `huggingface-cli login` "
            "(or HF_TOKEN) and that you may write to that repo"
        ) from err
    return files
