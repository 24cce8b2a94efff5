"""Architectures: shapes, gradients, pinned parameter counts, REF quirks, normalisation, init."""

import math

import pytest
import torch
import torch.nn.functional as F

from augmix.models import ARCHS, INPUT_SIZE, build_model, count_parameters

# Parameter counts computed from the REF definitions (google-research/augmix at 9b9824c:
# models/cifar/allconv.py, third_party/WideResNet_pytorch/wideresnet.py,
# third_party/ResNeXt_DenseNet/models/{densenet,resnext}.py) by instantiating them; our models also
# load REF state dicts with strict=True and give identical eval-mode outputs (checked when written).
# resnet18: the common CIFAR ResNet-18; resnet50: torchvision (25,557,032 at 1000 classes).
PARAMS = {
    ("allconv", 10): 1_409_674,
    ("allconv", 100): 1_427_044,
    ("densenet40_12", 10): 1_059_298,
    ("densenet40_12", 100): 1_100_428,
    ("densenet_bc100_12", 10): 769_162,
    ("densenet_bc100_12", 100): 800_032,
    ("wrn40_2", 10): 2_243_546,  # docs/reference-facts.md, "Models"
    ("wrn40_2", 100): 2_255_156,
    ("resnext29_4x32d", 10): 6_807_882,
    ("resnext29_4x32d", 100): 6_900_132,
    ("resnet18", 10): 11_173_962,
    ("resnet18", 100): 11_220_132,
    ("resnet50", 1000): 25_557_032,
    ("resnet50", 10): 23_528_522,
    ("wrn16_1", 10): 175_066,
    ("wrn16_2", 10): 691_674,
}


def _input(name: str, batch: int) -> torch.Tensor:
    side = 64 if name == "resnet50" else INPUT_SIZE[name]  # resnet50 at a small size for CPU
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0))


def test_every_arch_has_a_pinned_count():
    assert {name for name, _ in PARAMS} == set(ARCHS)


@pytest.mark.parametrize("name,num_classes", sorted(PARAMS))
def test_parameter_count_pinned(name, num_classes):
    assert count_parameters(build_model(name, num_classes)) == PARAMS[(name, num_classes)]


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_forward_backward_batch2(name):
    model = build_model(name, 10, seed=0).train()
    out = model(_input(name, 2))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([1, 7])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_batch_size_one(name):
    model = build_model(name, 7, seed=0)
    x = _input(name, 1)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 7)  # REF DenseNet's squeeze would give shape (7,)
        assert model.train()(x).shape == (1, 7)


def test_unknown_arch_names_the_offender():
    with pytest.raises(KeyError, match="wrn99_9") as info:
        build_model("wrn99_9", 10)
    assert "wrn40_2" in str(info.value)  # lists valid names


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("wrn16_1", 0)


@pytest.mark.parametrize("name", ["wrn16_1", "allconv", "resnet50"])
def test_normalisation_inside_the_model(name):
    model = build_model(name, 10, seed=0).eval()
    norm = model.normalize
    expected = (0.5, 0.5, 0.5) if name != "resnet50" else (0.485, 0.456, 0.406)
    assert torch.allclose(norm.mean.flatten(), torch.tensor(expected))
    # Constants of the architecture, not weights: kept out of the state dict.
    assert not any(k.startswith("normalize.") for k in model.state_dict())
    x = _input(name, 2)
    with torch.no_grad():
        y = model(x)
        model.normalize = torch.nn.Identity()
        y_manual = model((x - norm.mean) / norm.std)
    torch.testing.assert_close(y, y_manual)


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model("wrn16_1", 10, seed=5).state_dict()
    b = build_model("wrn16_1", 10, seed=5).state_dict()
    c = build_model("wrn16_1", 10, seed=6).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_reference_initialisation():
    model = build_model("wrn40_2", 10, seed=0)
    w = model.block3.layer[1].conv1.weight  # 3x3, 128 -> 128: 147,456 draws
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / (9 * 128)), rel=0.02)
    assert torch.equal(model.bn1.weight, torch.ones_like(model.bn1.weight))
    assert torch.equal(model.bn1.bias, torch.zeros_like(model.bn1.bias))
    assert torch.equal(model.fc.bias, torch.zeros_like(model.fc.bias))
    # PyTorch's default Linear init (uniform, bound 1/sqrt(fan_in)) is kept in WRN ...
    assert model.fc.weight.abs().max().item() <= 1 / math.sqrt(128)
    # ... while REF's ResNeXt re-initialises its classifier Kaiming-normal (std sqrt(2 / fan_in)).
    resnext = build_model("resnext29_4x32d", 100, seed=0)
    assert resnext.classifier.weight.std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.02)


def test_allconv_quirks():
    model = build_model("allconv", 10, seed=0).eval()
    gelu = model.features[2]
    t = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(gelu(t), t * torch.sigmoid(1.702 * t))
    shapes, h = [], model.normalize(_input("allconv", 2))
    with torch.no_grad():
        for layer in model.features:
            h_prev, h = h, layer(h)
            shapes.append(tuple(h.shape[1:]))
    # conv stages 96x32x32 and 192x16x16, unpadded 3x3 -> 6x6, padded 1x1 NIN -> 8x8 -> 10x10, pool -> 1x1
    assert (96, 32, 32) in shapes and (192, 16, 16) in shapes
    assert shapes[-4:] == [(192, 10, 10), (192, 10, 10), (192, 10, 10), (192, 1, 1)]
    assert (192, 6, 6) in shapes and (192, 8, 8) in shapes
    # AvgPool2d(8) on the 10x10 map averages only its top-left 8x8 window.
    torch.testing.assert_close(h.flatten(1), h_prev[:, :, :8, :8].mean(dim=(2, 3)))
    assert model.features[0].bias is not None  # REF keeps conv biases


def test_densenet_variants_channels():
    ref = build_model("densenet40_12", 10)
    assert len(ref.dense1) == 12 and ref.trans1.conv1.in_channels == 168
    assert ref.trans1.conv1.out_channels == 168  # reduction 1.0: no compression
    assert ref.trans2.conv1.in_channels == 312 and ref.fc.in_features == 456
    assert not hasattr(ref.dense1[0], "conv2")  # no bottleneck
    bc = build_model("densenet_bc100_12", 10)
    assert len(bc.dense1) == 16 and hasattr(bc.dense1[0], "conv2")
    assert (bc.trans1.conv1.in_channels, bc.trans1.conv1.out_channels) == (216, 108)
    assert bc.fc.in_features == 342


def test_resnext_grouping():
    model = build_model("resnext29_4x32d", 10)
    assert [len(s) for s in (model.stage_1, model.stage_2, model.stage_3)] == [3, 3, 3]
    first = model.stage_1[0].conv_conv
    assert first.groups == 4 and first.out_channels == 128  # 4 groups of width 32
    assert model.stage_3[0].conv_conv.out_channels == 512 and model.classifier.in_features == 1024


def test_wrn_shortcut_reads_activated_input():
    """xternalz semantics: the 1x1 shortcut sees relu(bn1(x)); the identity shortcut sees raw x."""
    model = build_model("wrn16_2", 10, seed=0).eval()
    block = model.block1.layer[0]  # 16 -> 32 channels: projection shortcut
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        act = F.relu(block.bn1(x))
        residual = block.conv2(F.relu(block.bn2(block.conv1(act))))
        torch.testing.assert_close(block(x), block.conv_shortcut(act) + residual)
        same = model.block1.layer[1]  # 32 -> 32: identity shortcut
        z = torch.randn(2, 32, 8, 8)
        residual = same.conv2(F.relu(same.bn2(same.conv1(F.relu(same.bn1(z))))))
        torch.testing.assert_close(same(z), z + residual)


def test_count_parameters_trainable_only():
    model = build_model("wrn16_1", 10)
    model.fc.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 640
