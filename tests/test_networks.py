"""E, G (+P), D as in the paper (G paints the whole frame) on the tiny sizes: shapes, AdaIN, spectral norm, determinism.

The warp-guided G of the shipped presets is tested in test_warp.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from talking_head.nets.config import ModelConfig
from talking_head.nets.discriminator import Discriminator
from talking_head.nets.embedder import Embedder
from talking_head.nets.generator import Generator
from talking_head.nets.layers import AdaINResBlock, SelfAttention
from talking_head.nets.model import TalkingHeadModel

CONFIG = dataclasses.replace(ModelConfig.preset("tiny"), warp_guided=False, generator_skips=False)
B, S, N = 2, CONFIG.image_size, CONFIG.embedding_dim


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, S, S, generator=g) * 2 - 1, torch.rand(B, 3, S, S, generator=g) * 2 - 1


def test_embedder_output_is_nonnegative_embedding() -> None:
    x, y = _images()
    e = Embedder(CONFIG)(x, y)
    assert e.shape == (B, N)
    assert (e >= 0).all()  # sum pooling then ReLU


def test_embed_frames_averages_over_k() -> None:
    embedder = Embedder(CONFIG).eval()
    x, y = _images()
    xk, yk = torch.stack([x, x.flip(0)], dim=1), torch.stack([y, y.flip(0)], dim=1)  # (B, K=2, 3, S, S)
    with torch.no_grad():
        expected = (embedder(x, y) + embedder(x.flip(0), y.flip(0))) / 2
        assert torch.allclose(embedder.embed_frames(xk, yk), expected, atol=1e-5)


def test_generator_shapes_and_adain_count_equals_rows_of_p() -> None:
    generator = Generator(CONFIG)
    _, y = _images()
    out = generator(y, e=torch.rand(B, N))
    assert out.shape == (B, 3, S, S)
    assert out.abs().max() <= 1  # tanh head
    assert generator.projection.weight.shape == (generator.n_adain_params, N)
    adain_blocks = [m for m in generator.modules() if isinstance(m, AdaINResBlock)]
    assert len(adain_blocks) == CONFIG.generator_bottleneck_blocks + len(CONFIG.generator_up_channels)
    # Each block has its own (scale, bias) per norm; the head adds one more pair.
    expected = sum(2 * (b.in_ch + b.out_ch) for b in adain_blocks) + 2 * CONFIG.generator_up_channels[-1]
    assert generator.n_adain_params == expected
    assert generator.project(torch.rand(B, N)).shape == (B, generator.n_adain_params)


def test_generator_accepts_adain_params_directly() -> None:
    generator = Generator(CONFIG).eval()
    _, y = _images()
    e = torch.rand(1, N)
    with torch.no_grad():
        psi = generator.project(e)  # (1, n)
        via_e = generator(y, e=e.expand(B, -1))
        via_psi_2d = generator(y, adain_params=psi.expand(B, -1))
        via_psi_1d = generator(y, adain_params=psi[0])
    assert torch.allclose(via_e, via_psi_2d, atol=1e-4)
    assert torch.allclose(via_psi_1d, via_psi_2d, atol=1e-4)
    with pytest.raises(ValueError):
        generator(y)
    with pytest.raises(ValueError, match="entries"):
        generator(y, adain_params=torch.zeros(3))


def test_the_two_norms_of_a_block_use_separate_statistics() -> None:
    block = AdaINResBlock(8, 8).eval()
    x = torch.randn(1, 8, 4, 4)
    params = torch.zeros(1, block.n_adain_params)
    changed = params.clone()
    changed[:, 16:24] = 1.0  # only the second norm's scale
    with torch.no_grad():
        assert not torch.allclose(block(x, params), block(x, changed))
        first_only = params.clone()
        first_only[:, :8] = 1.0
        assert not torch.allclose(block(x, first_only), block(x, changed))


def test_discriminator_score_and_features() -> None:
    discriminator = Discriminator(CONFIG, num_videos=5)
    x, y = _images()
    score, feats = discriminator(x, y, video_index=torch.tensor([0, 4]))
    assert score.shape == (B,)
    n_blocks = len(CONFIG.discriminator_channels) + CONFIG.discriminator_extra_blocks
    assert len(feats) == n_blocks
    assert feats[0].shape == (B, CONFIG.discriminator_channels[0], S // 2, S // 2)
    assert feats[-1].shape == (B, N, 4, 4)


def test_discriminator_projection_formula() -> None:
    discriminator = Discriminator(CONFIG, num_videos=3).eval()
    with torch.no_grad():
        discriminator.w0.normal_()
        discriminator.b.fill_(0.5)
        x, y = _images()
        v, _ = discriminator.features(x, y)
        idx = torch.tensor([2, 1])
        w_i = discriminator.video_embedding(idx)
        assert torch.allclose(discriminator(x, y, video_index=idx)[0], (v * (w_i + discriminator.w0)).sum(1) + 0.5,
                              atol=1e-5)
        w = torch.randn(N)
        assert torch.allclose(discriminator(x, y, w=w)[0], v @ w + 0.5, atol=1e-5)
        assert torch.allclose(discriminator(x, y)[0], v @ discriminator.w0 + 0.5, atol=1e-5)


def test_video_table_resizes_keeping_rows_and_is_not_generic() -> None:
    discriminator = Discriminator(CONFIG, num_videos=3)
    before = discriminator.video_table.parametrizations.weight.original.detach().clone()
    discriminator.set_num_videos(6)
    assert discriminator.num_videos == 6
    assert torch.equal(discriminator.video_table.parametrizations.weight.original[:3], before)
    assert not any(k.startswith("video_table") for k in discriminator.generic_state_dict())
    assert "w0" in discriminator.generic_state_dict() and "b" in discriminator.generic_state_dict()
    discriminator.set_num_videos(0)
    with pytest.raises(ValueError, match="set_num_videos"):
        discriminator(*_images(), video_index=torch.tensor([0, 0]))


def test_every_conv_and_linear_is_spectral_normalized() -> None:
    model = TalkingHeadModel(CONFIG, num_videos=4)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert layers
    for layer in layers:
        assert hasattr(layer, "parametrizations") and "weight" in layer.parametrizations, layer


def test_self_attention_starts_as_identity() -> None:
    attention = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(attention(x), x)  # gamma = 0 at init


def test_seeded_construction_is_deterministic() -> None:
    x, y = _images()

    def build_and_run() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        torch.manual_seed(1234)
        model = TalkingHeadModel(CONFIG).eval()
        with torch.no_grad():
            out = model.generator(y, e=model.embedder(x, y))
        return model.state_dict(), out

    state_a, out_a = build_and_run()
    state_b, out_b = build_and_run()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert torch.equal(out_a, out_b)
    torch.manual_seed(99)
    other = TalkingHeadModel(CONFIG)
    assert not torch.equal(other.state_dict()["generator.head_conv.parametrizations.weight.original"],
                           state_a["generator.head_conv.parametrizations.weight.original"])


def test_networks_train_end_to_end() -> None:
    """Gradients reach E, P and G from a generator loss, and D from its score."""
    model = TalkingHeadModel(CONFIG, num_videos=2)
    x, y = _images()
    fake = model.generator(y, e=model.embedder(x, y))
    score, _ = model.discriminator(fake, y, video_index=torch.tensor([0, 1]))
    (-score.mean() + (fake - x).abs().mean()).backward()
    for part in (model.embedder, model.generator.projection, model.generator.down, model.discriminator.blocks):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), part
