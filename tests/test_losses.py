"""Loss functions and LossConfig, checked against values computed by hand."""

from __future__ import annotations

import warnings

import pytest
import torch

from talking_head.errors import WeightsError
from talking_head.nets.losses import (
    ContentLoss,
    LossConfig,
    d_hinge_loss,
    embedding_match_loss,
    feature_matching_loss,
    g_adversarial_loss,
    pixel_content_loss,
)


def test_d_hinge_loss_hand_computed() -> None:
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # real side: max(0, 1 - r) = 0, 0.5, 2   -> mean 2.5 / 3
    # fake side: max(0, 1 + f) = 0, 1, 1.5   -> mean 2.5 / 3
    assert d_hinge_loss(real, fake).item() == pytest.approx(5.0 / 3.0)


def test_d_hinge_loss_uses_raw_scores() -> None:
    # With a sigmoid in front, a confident D could never reach zero loss; raw scores can.
    assert d_hinge_loss(torch.tensor([5.0, 1.0]), torch.tensor([-3.0, -1.0])).item() == 0.0
    # Scores far on the wrong side grow linearly, not saturate.
    assert d_hinge_loss(torch.tensor([-9.0]), torch.tensor([9.0])).item() == pytest.approx(20.0)


def test_g_adversarial_loss_hand_computed() -> None:
    fake = torch.tensor([1.0, -3.0, 0.5, 2.5], requires_grad=True)  # mean 0.25
    loss = g_adversarial_loss(fake)
    assert loss.item() == pytest.approx(-0.25)
    loss.backward()
    assert torch.allclose(fake.grad, torch.full((4,), -0.25))


def test_feature_matching_loss_hand_computed_and_real_detached() -> None:
    real = [
        torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True),
        torch.tensor([0.5], requires_grad=True),
    ]
    fake = [
        torch.tensor([[1.0, 1.0], [1.0, 1.0]], requires_grad=True),
        torch.tensor([-0.5], requires_grad=True),
    ]
    # block 1: |diff| = 0, 1, 2, 3 -> mean 1.5; block 2: |0.5 - (-0.5)| = 1 -> total 2.5
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    assert real[0].grad is None and real[1].grad is None
    # d/dfake mean|r - f| = -sign(r - f) / n; sign(0) = 0
    assert torch.allclose(fake[0].grad, torch.tensor([[0.0, -0.25], [-0.25, -0.25]]))
    assert torch.allclose(fake[1].grad, torch.tensor([-1.0]))


def test_feature_matching_loss_rejects_mismatched_blocks() -> None:
    with pytest.raises(ValueError):
        feature_matching_loss([torch.zeros(2)], [torch.zeros(2), torch.zeros(2)])
    with pytest.raises(ValueError):
        feature_matching_loss([torch.zeros(2)], [torch.zeros(3)])


def test_embedding_match_loss_is_mean_l1_with_gradients_to_both() -> None:
    e_hat = torch.tensor([[1.0, -2.0, 3.0, 4.0]], requires_grad=True)
    w = torch.tensor([[0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    loss = embedding_match_loss(e_hat, w)
    assert loss.item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    loss.backward()
    assert torch.allclose(e_hat.grad, torch.tensor([[0.25, -0.25, 0.25, 0.25]]))
    assert torch.allclose(w.grad, -e_hat.grad)


def test_pixel_content_loss_hand_computed() -> None:
    target = torch.rand(1, 3, 16, 16) * 2 - 1
    assert pixel_content_loss(target, target).item() == 0.0
    # A constant shift c: every pooled copy differs by c (4 scales -> 4c), finite differences not at all.
    shifted = target + 0.25
    assert pixel_content_loss(shifted, target).item() == pytest.approx(1.0, abs=1e-6)
    # A one-pixel spike of height 1 in a 3x16x16 image: scale 1 gives 1/768; pools 2/4/8 shrink
    # it to 1/4, 1/16, 1/64 in one of 192, 48, 12 cells; finite differences: 2 horizontal and
    # 2 vertical steps of height 1 among 3*16*15 differences each.
    spike = target.clone()
    spike[0, 0, 5, 5] += 1.0
    pooled = 1 / 768 + (1 / 4) / 192 + (1 / 16) / 48 + (1 / 64) / 12
    expected = pooled * 1 + 2 * (2 / (3 * 16 * 15))
    assert pixel_content_loss(spike, target).item() == pytest.approx(expected, rel=1e-4)


def test_loss_config_defaults_are_arxiv_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALKING_HEAD_VGG19", raising=False)
    monkeypatch.delenv("TALKING_HEAD_VGGFACE", raising=False)
    cfg = LossConfig()
    assert (cfg.vgg19_weight, cfg.vggface_weight) == (1.5e-1, 2.5e-2)
    assert (cfg.adversarial_weight, cfg.feature_matching_weight, cfg.embedding_match_weight) == (
        1.0,
        10.0,
        10.0,
    )
    assert cfg.content_loss == "auto"
    assert cfg.vgg19_source is None and cfg.vggface_source is None
    v1 = LossConfig.arxiv_v1()
    assert (v1.vgg19_weight, v1.vggface_weight, v1.embedding_match_weight) == (1e-2, 2e-3, 80.0)
    assert v1.feature_matching_weight == 10.0


def test_loss_config_sources_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALKING_HEAD_VGG19", "/weights/vgg19.safetensors")
    monkeypatch.setenv("TALKING_HEAD_VGGFACE", "someone/vgg-face:vgg_face.safetensors")
    cfg = LossConfig()
    assert cfg.vgg19_source == "/weights/vgg19.safetensors"
    assert cfg.vggface_source == "someone/vgg-face:vgg_face.safetensors"
    assert LossConfig(vgg19_source=None).vgg19_source is None


def test_loss_config_round_trip_and_validation() -> None:
    cfg = LossConfig(content_loss="pixel", vgg19_source="a/b", pixel_weight=2.0)
    data = cfg.to_dict()
    assert data["content_loss"] == "pixel" and data["vgg19_source"] == "a/b"
    assert LossConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="bogus"):
        LossConfig.from_dict({**data, "bogus": 1})
    with pytest.raises(ValueError, match="content_loss"):
        LossConfig(content_loss="lpips")
    with pytest.raises(ValueError, match="vgg19_weight"):
        LossConfig(vgg19_weight=-1.0)
    with pytest.raises(AttributeError):
        cfg.content_loss = "vgg"  # frozen


def test_content_loss_falls_back_to_pixel_with_one_warning() -> None:
    cfg = LossConfig(content_loss="auto", vgg19_source=None, vggface_source=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss_fn = ContentLoss(cfg)
    assert len([w for w in caught if issubclass(w.category, UserWarning)]) == 1
    assert "pixel" in str(caught[0].message) and "TALKING_HEAD_VGG19" in str(caught[0].message)
    assert loss_fn.kind == "pixel"

    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    assert loss_fn(target, target).item() == 0.0
    pred = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    loss = loss_fn(pred, target)
    assert loss.item() > 0
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum().item() > 0


def test_content_loss_pixel_weight_and_explicit_kinds(tmp_path) -> None:
    target = torch.zeros(1, 3, 8, 8)
    pred = target + 0.5  # pixel_content_loss = 4 * 0.5 = 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit "pixel" choice is not a fallback: no warning
        loss_fn = ContentLoss(LossConfig(content_loss="pixel", pixel_weight=3.0, vgg19_source="x/y"))
    assert loss_fn.kind == "pixel"
    assert loss_fn(pred, target).item() == pytest.approx(6.0)
    with pytest.raises(WeightsError, match="TALKING_HEAD_VGG19"):
        ContentLoss(LossConfig(content_loss="vgg", vgg19_source=None))
    with pytest.raises(WeightsError, match="absent.safetensors"):
        ContentLoss(LossConfig(content_loss="vgg", vgg19_source=str(tmp_path / "absent.safetensors")))


def test_content_loss_under_autocast() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss_fn = ContentLoss(LossConfig(vgg19_source=None, vggface_source=None))
    pred = torch.zeros(1, 3, 16, 16, requires_grad=True)
    target = torch.full((1, 3, 16, 16), 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(pred.to(torch.bfloat16), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(2.0, rel=1e-2)
    loss.backward()
    assert pred.grad is not None


def _to_tensor(image) -> torch.Tensor:
    """uint8 (H, W, 3) → (1, 3, H, W) in [-1, 1], as the trainer sees frames."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_ssim_loss_is_the_evaluation_ssim() -> None:
    import numpy as np
    from PIL import Image, ImageFilter

    from talking_head.evaluation.metrics import ssim
    from talking_head.nets.losses import ssim_loss, ssim_per_sample

    rng = np.random.default_rng(3)
    real = np.asarray(Image.fromarray(rng.integers(0, 256, (24, 30, 3), np.uint8)).resize((96, 80)))
    blurred = np.asarray(Image.fromarray(real).filter(ImageFilter.GaussianBlur(2)))
    for fake in (real, blurred, 255 - real):
        expected = ssim(fake, real)
        assert ssim_per_sample(_to_tensor(fake), _to_tensor(real)).item() == pytest.approx(expected, abs=1e-5)
    both = ssim_per_sample(
        torch.cat([_to_tensor(real), _to_tensor(blurred)]), _to_tensor(real).repeat(2, 1, 1, 1)
    )
    assert both[0].item() == pytest.approx(1.0) and both[1].item() < 0.9  # one score per sample
    assert ssim_loss(_to_tensor(real), _to_tensor(real)).item() == pytest.approx(0.0, abs=1e-6)


def test_mouth_ssim_loss_scores_the_lip_square_like_evaluate() -> None:
    import numpy as np
    from _synthetic import draw_face, template_landmarks

    from talking_head.evaluation.metrics import mouth_box, mouth_metrics
    from talking_head.nets.losses import mouth_squares, mouth_ssim_loss

    points = template_landmarks(128)
    real = draw_face(points, 128, (200, 160, 140), (30, 40, 50))
    opened = draw_face(template_landmarks(128, mouth_open=1.0), 128, (200, 160, 140), (30, 40, 50))
    pts = torch.from_numpy(points)[None]
    assert mouth_ssim_loss(_to_tensor(real), _to_tensor(real), pts).item() == pytest.approx(0.0, abs=1e-6)
    # The open mouth against the closed one: about evaluate's 1 − mouth SSIM (resampling differs a little).
    expected = 1 - mouth_metrics(opened, real, points)["mouth_ssim"]
    loss = mouth_ssim_loss(_to_tensor(opened), _to_tensor(real), pts).item()
    assert expected > 0.05 and loss == pytest.approx(expected, abs=0.03)
    # Pixels outside the square change nothing; gradients reach only the square (plus one bilinear pixel).
    x0, y0, x1, y1 = mouth_box(points, 128)
    outside = real.copy()
    outside[: y0 - 2] = 0
    assert mouth_ssim_loss(_to_tensor(outside), _to_tensor(real), pts).item() == pytest.approx(0.0, abs=1e-6)
    fake = _to_tensor(opened).requires_grad_(True)
    mouth_ssim_loss(fake, _to_tensor(real), pts).backward()
    touched = fake.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = np.nonzero(touched.numpy())
    assert rows.min() >= y0 - 2 and rows.max() <= y1 + 1 and cols.min() >= x0 - 2 and cols.max() <= x1 + 1
    # A crop that cuts the mouth off scores nothing there (and no NaN): it is left out of the mean.
    cut = pts - torch.tensor([0.0, float(points[48:68, 1].min()) - 2])  # lips at the top edge: square outside
    _, inside = mouth_squares(_to_tensor(real).repeat(2, 1, 1, 1), torch.cat([pts, cut]))
    assert inside.tolist() == [True, False]
    assert mouth_ssim_loss(_to_tensor(opened), _to_tensor(real), cut).item() == 0.0


def test_detail_loss_asks_for_the_real_amount_of_detail_not_its_exact_place() -> None:
    import cv2
    import numpy as np

    from talking_head.nets.losses import detail_energy, detail_loss, pixel_content_loss

    rng = np.random.default_rng(5)
    real = cv2.resize(rng.integers(0, 256, (32, 32, 3), np.uint8), (128, 128), interpolation=cv2.INTER_CUBIC)
    blurred = cv2.GaussianBlur(real, (0, 0), 2.0)
    shifted = np.roll(real, 2, axis=1)  # the same detail two pixels off
    x, b, s = _to_tensor(real), _to_tensor(blurred), _to_tensor(shifted)
    assert detail_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    # The energy is cv2's Laplacian (evaluate's sharpness) of the gray image, per 8×8 tile.
    gray = real.astype(np.float64).mean(axis=2) / 127.5
    lap = cv2.Laplacian(gray, cv2.CV_64F)[1:-1, 1:-1]
    assert (detail_energy(x) ** 2).mean().item() == pytest.approx((lap**2).mean(), rel=0.02)
    assert detail_energy(b).mean() < 0.5 * detail_energy(x).mean()
    # A pixel loss prefers the blur to the shifted detail; this loss the other way round.
    assert pixel_content_loss(b, x) < pixel_content_loss(s, x)
    assert detail_loss(s, x) < 0.5 * detail_loss(b, x)
    flat = torch.zeros_like(x)
    assert detail_energy(flat).max().item() < 1e-2  # only the epsilon under the root


def test_weighted_extra_terms_are_the_weighted_losses_that_are_on() -> None:
    from _synthetic import draw_face, template_landmarks

    from talking_head.nets.losses import (
        detail_loss,
        mouth_l1_loss,
        mouth_ssim_loss,
        ssim_loss,
        weighted_extra_terms,
    )

    points = template_landmarks(128)
    real = _to_tensor(draw_face(points, 128, (200, 160, 140), (30, 40, 50)))
    opened = _to_tensor(
        draw_face(template_landmarks(128, mouth_open=1.0), 128, (200, 160, 140), (30, 40, 50))
    )
    pts = torch.from_numpy(points)[None]
    assert weighted_extra_terms(LossConfig(), opened, real, pts) == {}  # the paper's weights: none
    config = LossConfig(mouth_weight=2, ssim_weight=3, mouth_ssim_weight=4, detail_weight=5)
    terms = weighted_extra_terms(config, opened, real, pts)
    expected = {
        "mouth": 2 * mouth_l1_loss(opened, real, pts),
        "ssim": 3 * ssim_loss(opened, real),
        "mouth_ssim": 4 * mouth_ssim_loss(opened, real, pts),
        "detail": 5 * detail_loss(opened, real),
    }
    assert terms.keys() == expected.keys()
    for name, value in expected.items():
        assert value.item() > 0 and terms[name].item() == pytest.approx(value.item(), rel=1e-6), name
    only_mouth = weighted_extra_terms(LossConfig(mouth_ssim_weight=1), opened, real, pts)
    assert list(only_mouth) == ["mouth_ssim"]


def _bright_flat_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A near-white, almost flat image and a slightly different one: bf16 variances cancel to garbage there."""
    generator = torch.Generator().manual_seed(0)
    target = 0.96 + 0.02 * torch.rand(2, 3, 64, 64, generator=generator)
    pred = target + 0.01 * torch.randn(2, 3, 64, 64, generator=generator)
    return pred.clamp(-1, 1), target


def test_every_loss_is_float32_under_bf16_autocast() -> None:
    """The SSIM-type terms computed in bf16 break on flat bright regions; under autocast they must equal fp32."""
    from _synthetic import template_landmarks

    from talking_head.nets.losses import (
        detail_loss,
        mouth_l1_loss,
        mouth_ssim_loss,
        ssim_loss,
    )

    pred, target = _bright_flat_pair()
    points = torch.from_numpy(template_landmarks(64)).expand(2, 68, 2)
    losses = {
        "ssim": lambda p, t: ssim_loss(p, t),
        "mouth_ssim": lambda p, t: mouth_ssim_loss(p, t, points),
        "mouth_l1": lambda p, t: mouth_l1_loss(p, t, points),
        "detail": lambda p, t: detail_loss(p, t),
        "pixel": lambda p, t: pixel_content_loss(p, t),
        "hinge": lambda p, t: d_hinge_loss(p.mean((1, 2, 3)), t.mean((1, 2, 3))),
    }
    for name, loss in losses.items():
        expected = loss(pred, target)
        leaf = pred.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = loss(leaf, target)
        assert got.dtype == torch.float32, name
        assert torch.isfinite(got), name
        assert got.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6), name
        got.backward()
        assert torch.isfinite(leaf.grad).all(), name


def test_ssim_loss_of_bf16_activations_is_computed_in_float32() -> None:
    """A bf16 network output (as G gives under autocast) is scored like its float32 copy."""
    from talking_head.nets.losses import ssim_per_sample
    from talking_head.nets.precision import float32_loss

    pred, target = _bright_flat_pair()
    pred16 = pred.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ssim_per_sample(pred16, target)
    assert got.dtype == torch.float32
    assert torch.allclose(got, ssim_per_sample(pred16.float(), target), atol=1e-6)

    seen = []

    @float32_loss
    def probe(x: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        seen.extend([x.dtype, pair[0].dtype, torch.is_autocast_enabled("cpu")])
        return torch.nn.functional.conv2d(x, torch.ones(1, 3, 3, 3)).mean()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert probe(pred16, (pred16, pred16)).dtype == torch.float32
    assert seen == [torch.float32, torch.float32, False]
