"""VGG extractors: layout, taps, input normalization, frozen weights and weight loading."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from talking_head.errors import WeightsError
from talking_head.nets.losses import ContentLoss, LossConfig
from talking_head.nets.perceptual import VGG19Features, VGGFaceFeatures, load_vgg_weights

# torchvision's VGG `features` conv indices and (in, out) channels, written out by hand
# so the test does not reuse the module's own layout code.
VGG19_CONVS = {
    0: (3, 64), 2: (64, 64),
    5: (64, 128), 7: (128, 128),
    10: (128, 256), 12: (256, 256), 14: (256, 256), 16: (256, 256),
    19: (256, 512), 21: (512, 512), 23: (512, 512), 25: (512, 512),
    28: (512, 512), 30: (512, 512), 32: (512, 512), 34: (512, 512),
}  # fmt: skip
VGG16_CONVS = {
    0: (3, 64), 2: (64, 64),
    5: (64, 128), 7: (128, 128),
    10: (128, 256), 12: (256, 256), 14: (256, 256),
    17: (256, 512), 19: (512, 512), 21: (512, 512),
    24: (512, 512), 26: (512, 512), 28: (512, 512),
}  # fmt: skip
# Caffe-style names of the VGG-16 convs, in the same order as VGG16_CONVS.
VGG16_CAFFE_NAMES = [f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for i in range(1, n + 1)]


def random_vgg_state(convs: dict[int, tuple[int, int]], seed: int) -> dict[str, torch.Tensor]:
    """A torchvision-style VGG state dict with He-scaled random weights and a (tiny) classifier."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for index, (c_in, c_out) in convs.items():
        std = math.sqrt(2.0 / (9 * c_in))
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * std
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=gen) * 0.01
    # The loader must ignore the classifier; a real one is 100M+ parameters, a stub will do.
    state["classifier.0.weight"] = torch.randn(4, 7, generator=gen)
    state["classifier.0.bias"] = torch.randn(4, generator=gen)
    return state


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_vgg_state(VGG19_CONVS, seed=0)
    path = tmp_path_factory.mktemp("vgg19") / "vgg19.safetensors"
    save_file(state, str(path))
    return path, state


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_vgg_state(VGG16_CONVS, seed=1)
    path = tmp_path_factory.mktemp("vggface") / "vgg_face.pth"
    torch.save(state, path)
    return path, state


def test_vgg19_loads_torchvision_state_dict(vgg19_file) -> None:
    path, state = vgg19_file
    module = VGG19Features()
    assert load_vgg_weights(module, path) == path
    params = module.state_dict()
    # Everything up to conv5_1 (index 28) is loaded; convs past relu5_1 are not even built.
    assert sorted(params) == sorted(
        f"features.{i}.{p}" for i in VGG19_CONVS if i <= 28 for p in ("weight", "bias")
    )
    for key, value in params.items():
        assert torch.equal(value, state[key]), key


def test_vggface_loads_torchvision_and_caffe_names(vgg16_file, tmp_path: Path) -> None:
    path, state = vgg16_file
    module = VGGFaceFeatures()
    load_vgg_weights(module, str(path))
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key

    # The same weights under Caffe-style names (as in most VGG-Face ports), with a wrapper prefix.
    caffe = {}
    for name, index in zip(VGG16_CAFFE_NAMES, VGG16_CONVS):
        caffe[f"module.{name}.weight"] = state[f"features.{index}.weight"]
        caffe[f"module.{name}.bias"] = state[f"features.{index}.bias"]
    caffe["fc8.weight"] = torch.zeros(2, 2)
    caffe_path = tmp_path / "vgg_face_caffe.safetensors"
    save_file(caffe, str(caffe_path))
    other = VGGFaceFeatures()
    load_vgg_weights(other, caffe_path)
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_missing_key_raises_weights_error_naming_file(vgg19_file, tmp_path: Path) -> None:
    _, state = vgg19_file
    broken = {k: v for k, v in state.items() if k != "features.21.weight"}
    path = tmp_path / "broken_vgg19.safetensors"
    save_file(broken, str(path))
    with pytest.raises(WeightsError, match="broken_vgg19.safetensors") as info:
        load_vgg_weights(VGG19Features(), path)
    assert "features.21.weight" in str(info.value)


def test_wrong_network_and_wrong_shape_raise(vgg19_file, tmp_path: Path) -> None:
    path, state = vgg19_file
    # A VGG19 file is not a VGG-16: index 17 is a ReLU in VGG19, a conv in VGG-16.
    with pytest.raises(WeightsError, match="vgg19.safetensors"):
        load_vgg_weights(VGGFaceFeatures(), path)
    reshaped = dict(state)
    reshaped["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    bad = tmp_path / "gray_vgg19.safetensors"
    save_file(reshaped, str(bad))
    with pytest.raises(WeightsError, match=r"gray_vgg19.safetensors.*features\.0\.weight"):
        load_vgg_weights(VGG19Features(), bad)


def test_missing_file_and_offline_hub_raise(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError, match="nope.safetensors"):
        load_vgg_weights(VGG19Features(), missing)
    with pytest.raises(WeightsError, match="not_here.pth"):
        load_vgg_weights(VGG19Features(), "weights/not_here.pth")
    # Repo ids go to the Hub; offline (tests) and uncached -> a WeightsError, not a hub exception.
    with pytest.raises(WeightsError, match="talking-head-test/no-such-vgg"):
        load_vgg_weights(VGG19Features(), "talking-head-test/no-such-vgg:vgg19.safetensors")


def test_non_state_dict_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsError, match="garbage.pth"):
        load_vgg_weights(VGG19Features(), path)


def test_vgg19_normalization_matches_imagenet_stats() -> None:
    module = VGG19Features()
    gray = torch.zeros(1, 3, 2, 2)  # mid-gray in [-1, 1] is 0.5 in [0, 1]
    expected = [(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225]
    out = module.normalize(gray)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected), atol=1e-6)
    white = module.normalize(torch.ones(1, 3, 1, 1))
    assert torch.allclose(
        white.flatten(), torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    )


def test_vggface_normalization_is_caffe_bgr_0_255() -> None:
    gray = VGGFaceFeatures().normalize(torch.zeros(1, 3, 1, 1)).flatten()
    assert torch.allclose(
        gray, torch.tensor([127.5 - 93.5940, 127.5 - 104.7624, 127.5 - 129.1863]), atol=1e-4
    )
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)  # pure red, RGB
    bgr = VGGFaceFeatures().normalize(red).flatten()
    assert torch.allclose(bgr, torch.tensor([0 - 93.5940, 0 - 104.7624, 255 - 129.1863]), atol=1e-4)
    rgb = VGGFaceFeatures(channel_order="rgb").normalize(red).flatten()
    assert torch.allclose(rgb, torch.tensor([255 - 129.1863, 0 - 104.7624, 0 - 93.5940]), atol=1e-4)


@pytest.mark.parametrize("cls", [VGG19Features, VGGFaceFeatures])
def test_taps_channels_sizes_and_frozen(cls) -> None:
    module = cls()
    module.train()  # a parent calling .train() must not unfreeze or un-eval the extractor
    assert not module.training
    assert all(not p.requires_grad for p in module.parameters())
    with torch.no_grad():
        taps = module(torch.zeros(1, 3, 64, 48))
    assert [tuple(t.shape[1:]) for t in taps] == [
        (64, 64, 48),
        (128, 32, 24),
        (256, 16, 12),
        (512, 8, 6),
        (512, 4, 3),
    ]
    # Every tap is a ReLU output.
    assert all(float(t.min()) >= 0 for t in taps)


def test_vgg_content_loss_gradients_reach_prediction_only(vgg19_file, vgg16_file) -> None:
    config = LossConfig(
        content_loss="vgg", vgg19_source=str(vgg19_file[0]), vggface_source=str(vgg16_file[0])
    )
    loss_fn = ContentLoss(config)
    assert loss_fn.kind == "vgg"
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    pred = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    terms = loss_fn.terms(pred, target)
    assert set(terms) == {"vgg19", "vggface"}
    assert all(float(v.detach()) > 0 for v in terms.values())
    sum(terms.values()).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    assert all(p.grad is None for p in loss_fn.parameters())
    with torch.no_grad():
        assert float(loss_fn(target, target)) == 0.0


def test_vgg19_only_when_vggface_missing(vgg19_file) -> None:
    config = LossConfig(content_loss="auto", vgg19_source=str(vgg19_file[0]), vggface_source=None)
    with pytest.warns(UserWarning, match="VGGFace"):
        loss_fn = ContentLoss(config)
    assert loss_fn.kind == "vgg19"
    assert loss_fn.vggface is None


def test_explicit_vgg_with_bad_vggface_source_raises(vgg19_file, tmp_path: Path) -> None:
    config = LossConfig(
        content_loss="vgg", vgg19_source=str(vgg19_file[0]), vggface_source=str(tmp_path / "missing_face.pth")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "vgg" must fail loudly, not warn and fall back
        with pytest.raises(WeightsError, match="missing_face.pth"):
            ContentLoss(config)


def test_vgg_content_loss_under_autocast(vgg19_file) -> None:
    config = LossConfig(content_loss="vgg", vgg19_source=str(vgg19_file[0]), vggface_source=None)
    with pytest.warns(UserWarning):
        loss_fn = ContentLoss(config)
    pred = torch.zeros(1, 3, 16, 16, requires_grad=True)
    target = torch.full((1, 3, 16, 16), 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(pred, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
