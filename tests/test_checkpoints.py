"""checkpoints.load_checkpoint: each source format, written here the way its source writes it, loads
into our architecture and gives the source model's logits on inputs normalised the source's way;
each malformed or mismatched file is refused with one line naming it."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.transforms.functional import normalize as tv_normalize

from augmix.checkpoints import FORMATS, detect_format, load_checkpoint
from augmix.errors import CheckpointError
from augmix.models import build_model

CIFAR = ([0.5] * 3, [0.5] * 3)  # google-research/augmix cifar.py preprocess
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # imagenet.py; torchvision
CIFAR10_STATS = ([0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616])  # any non-default pair will do


# --------------------------------------------------------------------------------------------------
# Source models. The WRN below restates xternalz's WideResNet, which google-research/augmix vendors
# (third_party/WideResNet_pytorch/wideresnet.py, shortcut "conv_shortcut") and RobustBench copies
# (robustbench/model_zoo/architectures/wide_resnet.py, shortcut "convShortcut"): same module names,
# same forward. The other REF CIFAR nets have exactly our layer names, so their stand-in is our model
# with the normalisation taken out (REF normalises in the data pipeline).


class XBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.same, self.shortcut = c_in == c_out, shortcut
        setattr(self, shortcut, None if self.same else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:  # identity path carries the raw input
            h, skip = self.relu1(self.bn1(x)), x
        else:  # the projection reads the activated input
            x = self.relu1(self.bn1(x))
            h, skip = x, getattr(self, self.shortcut)(x)
        return skip + self.conv2(self.relu2(self.bn2(self.conv1(h))))


class XGroup(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(XBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, shortcut)
                                     for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class XWideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, shortcut: str = "conv_shortcut") -> None:
        super().__init__()
        n, w = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.block1 = XGroup(n, w[0], w[1], 1, shortcut)
        self.block2 = XGroup(n, w[1], w[2], 2, shortcut)
        self.block3 = XGroup(n, w[2], w[3], 2, shortcut)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(w[3], num_classes)
        self.width = w[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8)
        return self.fc(out.view(-1, self.width))


class RobustBenchAugMixWRN(XWideResNet):
    """RobustBench's Hendrycks2020AugMixWRNNet: WRN-40-2 plus persistent mu/sigma buffers."""

    def __init__(self, num_classes: int = 10, stats=CIFAR) -> None:
        super().__init__(40, 2, num_classes, shortcut="convShortcut")
        self.register_buffer("mu", torch.tensor(stats[0]).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor(stats[1]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward((x - self.mu) / self.sigma)


class Normalizer(nn.Module):
    """RobustBench's ImageNormalizer: persistent mean/std buffers."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _trained_look(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics and affine terms away from their initial values, so a layer loaded into
    the wrong place, or a wrong normalisation, shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.num_batches_tracked.fill_(1234)
    return model.eval()


def _reference_net(arch: str, num_classes: int) -> nn.Module:
    """One of REF's CIFAR networks: our model without the normalisation (same layer names)."""
    model = build_model(arch, num_classes, seed=3)
    model.normalize = nn.Identity()
    return _trained_look(model)


def _images(side: int = 32, n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(7))


def _source_logits(net: nn.Module, x: torch.Tensor, stats) -> torch.Tensor:
    with torch.no_grad():
        return net(tv_normalize(x, *stats))


def _logits(loaded, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(x)


def _data_parallel_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as REF saves it: through torch.nn.DataParallel (module. on every key)."""
    return nn.DataParallel(net).state_dict()


def _reference_dict(state, *, model_name: str, dataset: str | None = "cifar10", epoch: int = 99) -> dict:
    """REF cifar.py's checkpoint dict (imagenet.py: no dataset, best_acc1)."""
    out = {"epoch": epoch, "model": model_name, "state_dict": state,
           "optimizer": torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9).state_dict()}
    if dataset is None:
        out["best_acc1"] = torch.tensor(77.53)
    else:
        out |= {"dataset": dataset, "best_acc": 0.9512}
    return out


def _assert_normalisation(loaded, stats) -> None:
    torch.testing.assert_close(loaded.model.normalize.mean.flatten(), torch.tensor(stats[0]))
    torch.testing.assert_close(loaded.model.normalize.std.flatten(), torch.tensor(stats[1]))


# --------------------------------------------------------------------------------------------------
# Our own files


def test_augmix_model_pt(tmp_path):
    model = _trained_look(build_model("wrn16_1", 3, seed=1))
    path = tmp_path / "model.pt"
    # As src/augmix/train.py writes it.
    torch.save({"arch": "wrn16_1", "dataset": "digits", "method": "augmix", "num_classes": 3,
                "classes": ["zero", "one", "two"], "model": model.state_dict(),
                "params": {"seed": 1, "augmix": {"width": 3, "alpha": 1.0}}}, path)
    loaded = load_checkpoint(path, arch=None, dataset=None, num_classes=None)
    assert (loaded.format, loaded.arch, loaded.num_classes) == ("augmix", "wrn16_1", 3)
    assert loaded.classes == ["zero", "one", "two"]
    assert loaded.meta == {"arch": "wrn16_1", "dataset": "digits", "method": "augmix", "num_classes": 3,
                           "params": {"seed": 1, "augmix": {"width": 3, "alpha": 1.0}}}
    assert not loaded.model.training
    x = _images()
    with torch.no_grad():
        assert torch.equal(_logits(loaded, x), model(x))
    _assert_normalisation(loaded, CIFAR)  # the architecture's own
    same = load_checkpoint(path, arch="wrn16_1", dataset="digits", num_classes=3, format="augmix")
    assert torch.equal(_logits(same, x), _logits(loaded, x))


def test_augmix_resume_file(tmp_path):
    """train.py's per-epoch file names no architecture: the weights' shapes pick it."""
    model = _trained_look(build_model("wrn16_2", 4, seed=2))
    path = tmp_path / "train_state.pt"
    torch.save({"fingerprint": "abc", "epoch": 3, "model": model.state_dict(),
                "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
                "scheduler": {"last_epoch": 30}, "log": [{"epoch": 1, "test_error": 0.5}]}, path)
    loaded = load_checkpoint(path, arch=None, dataset=None, num_classes=4)
    assert (loaded.format, loaded.arch) == ("augmix", "wrn16_2")
    assert loaded.meta == {"fingerprint": "abc", "epoch": 3, "log": [{"epoch": 1, "test_error": 0.5}]}
    x = _images()
    with torch.no_grad():
        assert torch.equal(_logits(loaded, x), model(x))


# --------------------------------------------------------------------------------------------------
# google-research/augmix


@pytest.mark.parametrize("depth,widen,arch", [(16, 1, "wrn16_1"), (16, 2, "wrn16_2")])
def test_reference_wrn(tmp_path, depth, widen, arch):
    net = _trained_look(XWideResNet(depth, widen, 10))
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(_reference_dict(_data_parallel_state(net), model_name="wrn"), path)
    loaded = load_checkpoint(path, arch=None, dataset="cifar10", num_classes=10)
    assert (loaded.format, loaded.arch, loaded.num_classes, loaded.classes) == ("reference", arch, 10, [])
    assert loaded.meta == {"epoch": 99, "model": "wrn", "dataset": "cifar10", "best_acc": 0.9512}
    json.dumps(loaded.meta)
    _assert_normalisation(loaded, CIFAR)
    x = _images()
    assert torch.equal(_logits(loaded, x), _source_logits(net, x, CIFAR))


@pytest.mark.parametrize("arch,model_name", [("allconv", "allconv"), ("densenet40_12", "densenet"),
                                             ("resnext29_4x32d", "resnext"), ("wrn40_2", "wrn")])
def test_reference_cifar_archs(tmp_path, arch, model_name):
    net = _reference_net(arch, 100)
    path = tmp_path / "model_best.pth.tar"
    torch.save(_reference_dict(_data_parallel_state(net), model_name=model_name, dataset="cifar100"), path)
    loaded = load_checkpoint(path, arch=None, dataset="cifar100", num_classes=100)
    assert (loaded.format, loaded.arch, loaded.num_classes) == ("reference", arch, 100)
    x = _images()
    assert torch.equal(_logits(loaded, x), _source_logits(net, x, CIFAR))


def test_reference_bare_state_dict(tmp_path):
    """`torch.save(net.state_dict())` of a REF CIFAR net, no training dict around it."""
    net = _trained_look(XWideResNet(16, 1, 10))
    path = tmp_path / "wrn.pt"
    torch.save(net.state_dict(), path)
    loaded = load_checkpoint(path, arch="wrn16_1", dataset="cifar10", num_classes=10)
    assert (loaded.format, loaded.meta) == ("reference", {})
    x = _images()
    assert torch.equal(_logits(loaded, x), _source_logits(net, x, CIFAR))


# --------------------------------------------------------------------------------------------------
# ResNet-50: REF imagenet.py, torchvision, RobustBench's ImageNet wrapper


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return _trained_look(torchvision.models.resnet50(num_classes=10))


def test_reference_imagenet_resnet50(tmp_path, resnet50):
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(_reference_dict(_data_parallel_state(resnet50), model_name="resnet50", dataset=None), path)
    loaded = load_checkpoint(path, arch=None, dataset=None, num_classes=10)
    assert (loaded.format, loaded.arch) == ("reference", "resnet50")
    assert loaded.meta["best_acc1"] == pytest.approx(77.53) and loaded.meta["epoch"] == 99
    _assert_normalisation(loaded, IMAGENET)
    x = _images(64, 2)
    assert torch.equal(_logits(loaded, x), _source_logits(resnet50, x, IMAGENET))


@pytest.mark.parametrize("layout", ["bare", "state_dict", "module"])
def test_torchvision_resnet50(tmp_path, resnet50, layout):
    state = {"bare": resnet50.state_dict(), "state_dict": {"state_dict": resnet50.state_dict()},
             "module": _data_parallel_state(resnet50)}[layout]
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    loaded = load_checkpoint(path, arch=None, dataset=None, num_classes=10)
    assert (loaded.format, loaded.arch, loaded.num_classes) == ("torchvision", "resnet50", 10)
    _assert_normalisation(loaded, IMAGENET)
    x = _images(64, 2)
    assert torch.equal(_logits(loaded, x), _source_logits(resnet50, x, IMAGENET))


def test_robustbench_imagenet_wrapper(tmp_path, resnet50):
    """robustbench normalize_model: Sequential(normalize=ImageNormalizer, model=resnet50)."""
    wrapped = nn.Sequential()
    wrapped.add_module("normalize", Normalizer(*CIFAR10_STATS))  # values from the file win
    wrapped.add_module("model", resnet50)
    path = tmp_path / "Hendrycks2020AugMix.pt"
    torch.save(wrapped.state_dict(), path)
    loaded = load_checkpoint(path, arch=None, dataset=None, num_classes=10)
    assert (loaded.format, loaded.arch) == ("robustbench", "resnet50")
    _assert_normalisation(loaded, CIFAR10_STATS)
    x = _images(64, 2)
    with torch.no_grad():
        assert torch.equal(_logits(loaded, x), wrapped(x))


# --------------------------------------------------------------------------------------------------
# RobustBench CIFAR


def test_robustbench_wrn_model_state_dict(tmp_path):
    """A RobustBench model object's state dict: convShortcut names and its mu/sigma buffers."""
    net = _trained_look(RobustBenchAugMixWRN(10, CIFAR10_STATS))
    path = tmp_path / "Hendrycks2020AugMix_WRN.pt"
    torch.save(net.state_dict(), path)
    loaded = load_checkpoint(path, arch=None, dataset="cifar10", num_classes=10)
    assert (loaded.format, loaded.arch) == ("robustbench", "wrn40_2")
    _assert_normalisation(loaded, CIFAR10_STATS)
    x = _images()
    with torch.no_grad():
        assert torch.equal(_logits(loaded, x), net(x))


def test_robustbench_wrn_download_layout(tmp_path):
    """The zoo file as RobustBench's loader reads it: a state_dict entry, module. prefixes, no mu/sigma
    (robustbench/utils.py tolerates their absence for these models); the class's 0.5/0.5 applies."""
    net = _trained_look(RobustBenchAugMixWRN(100))
    state = {k: v for k, v in _data_parallel_state(net).items() if k not in ("module.mu", "module.sigma")}
    path = tmp_path / "Hendrycks2020AugMix_WRN.pt"
    torch.save({"state_dict": state}, path)
    loaded = load_checkpoint(path, arch=None, dataset="cifar100", num_classes=100)
    assert (loaded.format, loaded.arch, loaded.num_classes) == ("robustbench", "wrn40_2", 100)
    _assert_normalisation(loaded, CIFAR)
    x = _images()
    with torch.no_grad():
        assert torch.equal(_logits(loaded, x), net(x))


def test_robustbench_resnext(tmp_path):
    net = _reference_net("resnext29_4x32d", 10)  # RobustBench's CifarResNeXt has REF's names
    state = dict(net.state_dict())
    state |= {"mu": torch.tensor(CIFAR10_STATS[0]).view(1, 3, 1, 1),
              "sigma": torch.tensor(CIFAR10_STATS[1]).view(1, 3, 1, 1)}
    path = tmp_path / "Hendrycks2020AugMix_ResNeXt.pt"
    torch.save(state, path)
    loaded = load_checkpoint(path, arch=None, dataset=None, num_classes=10)
    assert (loaded.format, loaded.arch) == ("robustbench", "resnext29_4x32d")
    x = _images()
    assert torch.equal(_logits(loaded, x), _source_logits(net, x, CIFAR10_STATS))
    # Without mu/sigma the file is indistinguishable from REF's; either reading gives the same model.
    torch.save({"state_dict": _data_parallel_state(net)}, path)
    as_rb = load_checkpoint(path, arch=None, dataset=None, num_classes=10, format="robustbench")
    as_auto = load_checkpoint(path, arch=None, dataset=None, num_classes=10)
    assert (as_rb.format, as_auto.format) == ("robustbench", "reference")
    expected = _source_logits(net, x, CIFAR)
    assert torch.equal(_logits(as_rb, x), expected) and torch.equal(_logits(as_auto, x), expected)


# --------------------------------------------------------------------------------------------------
# Detection and side effects


def test_detect_format_names_each_source():
    wrn = XWideResNet(16, 1, 10)
    tv = {"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1),
          "layer4.0.downsample.0.weight": torch.zeros(1), "fc.weight": torch.zeros(1)}
    assert detect_format({"arch": "wrn16_1", "model": build_model("wrn16_1", 10).state_dict()}) == "augmix"
    assert detect_format(_reference_dict(_data_parallel_state(wrn), model_name="wrn")) == "reference"
    assert detect_format(wrn.state_dict()) == "reference"
    assert detect_format(XWideResNet(16, 1, 10, shortcut="convShortcut").state_dict()) == "robustbench"
    assert detect_format(tv) == "torchvision"
    assert detect_format({"state_dict": {f"module.{k}": v for k, v in tv.items()}}) == "torchvision"


def test_load_leaves_global_rng_alone(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"arch": "wrn16_1", "model": build_model("wrn16_1", 10).state_dict()}, path)
    before = torch.get_rng_state()
    load_checkpoint(path, arch=None, dataset=None, num_classes=None)
    assert torch.equal(torch.get_rng_state(), before)


def test_old_files_without_num_batches_tracked(tmp_path):
    net = _trained_look(XWideResNet(16, 1, 10))
    path = tmp_path / "old.pt"
    torch.save({k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    loaded = load_checkpoint(path, arch="wrn16_1", dataset=None, num_classes=10)
    x = _images()
    assert torch.equal(_logits(loaded, x), _source_logits(net, x, CIFAR))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loads_onto_the_device(tmp_path):
    net = _trained_look(XWideResNet(16, 1, 10))
    path = tmp_path / "wrn.pt"
    torch.save(net.state_dict(), path)
    loaded = load_checkpoint(path, arch="wrn16_1", dataset=None, num_classes=10, device="cuda")
    assert all(t.is_cuda for t in [*loaded.model.parameters(), *loaded.model.buffers()])
    x = _images()
    torch.testing.assert_close(_logits(loaded, x.cuda()).cpu(), _source_logits(net, x, CIFAR), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# Refusals: one CheckpointError line naming the file


def _refused(path, match: str, **kwargs) -> str:
    kwargs = {"arch": None, "dataset": None, "num_classes": None} | kwargs
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


@pytest.fixture()
def small(tmp_path):
    """A REF-style WRN-16-1 checkpoint for CIFAR-10."""
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(_reference_dict(_data_parallel_state(XWideResNet(16, 1, 10)), model_name="wrn"), path)
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_refuses_truncated(tmp_path, small, legacy):
    obj = torch.load(small, weights_only=True)
    whole = tmp_path / "whole.pt"
    torch.save(obj, whole, _use_new_zipfile_serialization=not legacy)
    data = whole.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        _refused(path, "truncated")


def test_refuses_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    data = bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1)).tolist())
    assert not data.startswith((b"PK", b"\x80"))
    path.write_bytes(data)
    _refused(path, "not a PyTorch checkpoint")


def test_refuses_text_and_empty_and_missing(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("epoch,loss\n1,2.3\n")
    _refused(text, "text file")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _refused(empty, "empty")
    _refused(tmp_path / "absent.pt", "no such file")


@pytest.mark.parametrize("start", ["<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning",
                                   "\n  <html lang='en'><body>Download anyway</body></html>"])
def test_refuses_html_page(tmp_path, start):
    path = tmp_path / "Hendrycks2020AugMix_WRN.pt"
    path.write_text(start + " " * 2000)
    message = _refused(path, "HTML page")
    assert "download it again" in message


def test_refuses_pickled_objects(tmp_path):
    path = tmp_path / "whole_model.pt"
    path.write_bytes(pickle.dumps({"weights": torch.zeros(2), "when": __import__("datetime").date(2020, 1, 1)},
                                  protocol=2))
    _refused(path, "weights-only")


def test_refuses_weights_of_another_architecture(small, tmp_path):
    message = _refused(small, "do not fit wrn16_2", arch="wrn16_2")
    assert "shape mismatch" in message and "block1.layer.0.conv1.weight" in message
    state = _data_parallel_state(XWideResNet(16, 1, 10))
    del state["module.block2.layer.0.conv_shortcut.weight"]
    state["module.extra.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    message = _refused(path, "do not fit wrn16_1", arch="wrn16_1", format="reference")
    assert "missing block2.layer.0.conv_shortcut.weight" in message and "unexpected extra.weight" in message
    _refused(path, "fit none of", format="reference")  # nothing to fit when the arch is not given
    # A format that cannot hold the named architecture, or weights of another kind.
    _refused(small, "torchvision format holds resnet50, not wrn16_1", arch="wrn16_1", format="torchvision")
    _refused(small, "do not fit resnet50", format="torchvision")
    _refused(small, "holds a 'wrn' model, not allconv", arch="allconv")


def test_refuses_other_class_count_or_dataset(small):
    message = _refused(small, "has 10 classes", dataset=None, num_classes=100)
    assert "fc.weight" in message
    _refused(small, "trained on cifar10, not cifar100", dataset="cifar100", num_classes=100)


def test_sha256(small):
    digest = hashlib.sha256(small.read_bytes()).hexdigest()
    assert load_checkpoint(small, arch=None, dataset=None, num_classes=None, sha256=digest.upper()).arch == "wrn16_1"
    _refused(small, "does not match the expected", sha256="0" * 64)
    _refused(small, "not 64 hex digits", sha256="abc")


def test_refuses_unknown_format(tmp_path, small):
    path = tmp_path / "other.pt"
    torch.save({"encoder": {"w": torch.zeros(2)}, "step": 5}, path)
    message = _refused(path, "cannot tell which format")
    assert all(f in message for f in FORMATS[1:])
    torch.save(torch.zeros(3), path)
    _refused(path, "a Tensor")
    _refused(small, "unknown checkpoint format 'timm'", format="timm")
    _refused(small, "holds no weights where the augmix format keeps them", format="augmix")
