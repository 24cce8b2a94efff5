"""The training loop: schedule, epoch-level view precomputation, exact resume, every method runs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from augmix import config, data
from augmix.train import cosine_factor, derive_seed, train

from conftest import REPO, SMOKE_PARAMS

RAW = yaml.safe_load(SMOKE_PARAMS.read_text())


def _params(**changes):
    raw = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = raw
        for p in path:
            node = node[p]
        node[key] = value
    raw["tracking"]["enabled"] = False
    return config.parse(raw)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return data.build_digits(tmp_path_factory.mktemp("raw") / "digits", test_fraction=0.2, seed=1)


def test_cosine_schedule_matches_reference_values():
    # REF cifar.py get_lr with lr 0.1 -> 1e-6: factor 1 at 0, 0.500005 at T/2, 1e-5 at T.
    r = 1e-6 / 0.1
    assert cosine_factor(0, 1000, r) == 1.0
    assert math.isclose(cosine_factor(500, 1000, r), 0.500005, rel_tol=1e-12)
    assert math.isclose(cosine_factor(1000, 1000, r), r, rel_tol=1e-12)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert len({derive_seed(1, e, s) for e in range(10) for s in range(10)}) == 100


def test_epoch_views_equal_per_step_views():
    from augmix.augment import base_transform_batch, make_views
    from augmix.rng import SampleKeys
    from augmix.training_methods import EpochViews

    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    hp = {"severity": 3, "width": 3, "depth": -1, "alpha": 1.0, "all_ops": False, "backend": "tensor"}
    pre = EpochViews(x, seed=7, epoch=3, method="augmix", hp=hp, chunk=16)  # chunks unlike the batch
    idx = torch.tensor([41, 3, 17, 29, 0])
    keys = SampleKeys(7, 3, idx)
    base = base_transform_batch(x[idx], keys)
    assert torch.equal(pre.base[idx], base)
    expected = make_views(base, keys, jsd=True, backend="tensor", **{k: hp[k] for k in hp if k != "backend"})
    assert torch.equal(pre.batch_views(idx), expected)
    assert EpochViews(x, 7, 3, "augmix", {**hp, "backend": "pil"}).views is None  # PIL stays per step


def _state(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize("backend", ["tensor", "pil"])
def test_interrupted_run_resumes_bit_identical(tmp_path, digits, backend, capsys):
    params = _params(**{"data.max_train": 96, "archs.wrn16_1.epochs": 3, "optim.batch_size": 32,
                        "augmix.backend": backend})
    common = dict(dataset="digits", arch="wrn16_1", method="augmix", raw_dir=digits,
                  run=__import__("augmix.tracking", fromlist=["NullRun"]).NullRun())
    train(params, out_dir=tmp_path / "a", checkpoint=tmp_path / "a.pt", **common)
    stopped = train(params, out_dir=tmp_path / "b", checkpoint=tmp_path / "b.pt", stop_after_epoch=1, **common)
    assert stopped == {"stopped_after_epoch": 1} and not (tmp_path / "b" / "model.pt").exists()
    train(params, out_dir=tmp_path / "b", checkpoint=tmp_path / "b.pt", **common)
    a, b = _state(tmp_path / "a" / "model.pt"), _state(tmp_path / "b" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # A checkpoint from other params is not resumed from.
    other = _params(**{"data.max_train": 96, "archs.wrn16_1.epochs": 3, "optim.batch_size": 32,
                       "augmix.backend": backend, "augmix.severity": 4})
    capsys.readouterr()
    train(other, out_dir=tmp_path / "c", checkpoint=tmp_path / "a.pt", **common)
    out = capsys.readouterr().out
    assert "ignoring checkpoint" in out and out.count("[train] epoch") == 3


@pytest.mark.parametrize("method", ["standard", "augmix", "augmix_nojsd", "cutout", "mixup", "cutmix", "fmix",
                                    "autoaugment", "pgd"])
def test_every_method_trains_through_the_loop(tmp_path, digits, method):
    from augmix.tracking import NullRun

    params = _params(**{"data.max_train": 32, "data.max_test": 100, "archs.wrn16_1.epochs": 1,
                        "optim.batch_size": 16, "augmix.backend": "tensor", "methods.pgd.steps": 1})
    summary = train(params, dataset="digits", arch="wrn16_1", method=method, raw_dir=digits,
                    out_dir=tmp_path, checkpoint=tmp_path / "ck.pt", run=NullRun())
    assert summary["method"] == method and math.isfinite(summary["final_train_loss"])
    assert 0.0 <= summary["final_test_error"] <= 1.0
    assert (tmp_path / "model.pt").exists() and (tmp_path / "train_log.csv").exists()


def _synthetic_source(method, n=40, device="cpu"):
    from augmix.train import Data, TensorSource
    from augmix.training_methods import method_hparams

    params = _params()
    hp = method_hparams(params, method, torch.device(device))
    if "backend" in hp:  # AugMix: the batched path, as on a GPU
        hp["backend"] = "tensor"
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    return TensorSource(params, method, hp, Data(x, y), Data(x[:8], y[:8]), 10), hp


class _Recorder(torch.nn.Module):
    """A network that records its inputs and whether autocast was on when it was called."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x):
        self.seen.append((x.detach().clone(), torch.is_autocast_enabled("cpu")))
        return self.net(x)


@pytest.mark.parametrize("method", ["autoaugment", "cutout", "fmix", "augmix"])
def test_only_the_network_runs_under_autocast(method):
    """Forward puts autocast around the network alone: a method's augmentation gives the same
    inputs with bf16 autocast on as off (AutoAugment's affine grids ran in bf16 before, shifting
    pixels; AugMix views made in the step, as on ImageNet, too), the network sees autocast, and the
    logits come back in float32."""
    from augmix.models import build_model
    from augmix.rng import SampleKeys
    from augmix.train import Forward
    from augmix.training_methods import TrainBatch, all_methods, method_hparams

    hp = method_hparams(_params(), method, torch.device("cpu"))
    if "backend" in hp:
        hp["backend"] = "tensor"
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    batch = TrainBatch(x=x.float() / 255, y=torch.arange(16) % 10, num_classes=10, x_uint8=x,
                       keys=SampleKeys(0, 0, torch.arange(16)), views=None)
    net = build_model("wrn16_1", 10).eval()
    seen = {}
    for amp in (False, True):
        rec = _Recorder(net)
        fwd = Forward(net, rec, torch.autocast("cpu", dtype=torch.bfloat16) if amp else None)
        loss, _ = all_methods()[method](fwd, batch, hp, torch.Generator().manual_seed(7))
        assert loss.dtype == torch.float32 and fwd(batch.x).dtype == torch.float32
        seen[amp] = rec.seen[0]
    assert torch.equal(seen[False][0], seen[True][0])
    assert (seen[False][1], seen[True][1]) == (False, True)


def test_forward_reads_model_attributes_through_wrappers():
    """Cutout fills with the model's normalisation mean even when the network is wrapped (compiled,
    DDP), which has no `normalize` of its own: the fill was black before."""
    from augmix.methods import METHODS, Batch
    from augmix.models import build_model
    from augmix.train import Forward

    net = build_model("wrn16_1", 10)
    rec = _Recorder(net)
    wrapped = Forward(net, lambda x: rec(x))  # a wrapper without attributes, as CompiledFirstShape
    batch = Batch(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 10)
    METHODS["cutout"](wrapped, batch, {}, torch.Generator().manual_seed(0))
    assert set(rec.seen[0][0].unique().tolist()) == {0.0, 0.5}  # 0.5: zero after 0.5/0.5 normalisation


def test_source_batches_are_the_epoch_views_of_each_index_batch():
    """One host-to-device copy per epoch gives the same batches as indexing step by step."""
    from augmix.rng import SampleKeys
    from augmix.training_methods import EpochViews

    source, hp = _synthetic_source("augmix")
    index_batches = list(torch.randperm(40, generator=torch.Generator().manual_seed(3)).split(16))
    batches = list(source.batches(5, index_batches))
    assert [len(b.y) for b in batches] == [16, 16, 8]
    views = EpochViews(source.train.x, source.params.seed, 5, "augmix", hp)
    for idx, batch in zip(index_batches, batches):
        assert torch.equal(batch.views, views.batch_views(idx))
        assert torch.equal(batch.y, source.train.y[idx])
        assert torch.equal(batch.keys.index, SampleKeys(source.params.seed, 5, idx).index)
    assert list(source.batches(5, [])) == []


def test_bench_train_quick_reports_consistent_figures():
    from augmix import bench_train

    r = bench_train.run(quick=True, device="cpu", full_epoch=True)
    assert r["arch"] == "wrn16_1" and r["device"] == "cpu" and r["timed_steps"] == 3
    steps_per_epoch = math.ceil(r["epoch_samples"] / r["batch_size"])
    expected = r["augmentation_s_per_epoch"] + steps_per_epoch * r["step_ms"] / 1e3
    assert math.isclose(r["epoch_s_estimate"], expected, rel_tol=0.02, abs_tol=0.02)
    assert 0 < r["augmentation_share"] < 1 and r["full_epoch_s"] > 0
    table = bench_train.format_table(r)
    assert all(line.split()[0] in r for line in table.splitlines()) and len(table.splitlines()) == len(r)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_steps_never_wait_for_the_device():
    """The step loop reads nothing back to the host: with the sync debug mode set to error, a few
    AugMix+JSD steps (views made up front, as in training) run through."""
    from augmix.models import build_model
    from augmix.train import Forward, bf16_autocast, train_epoch
    from augmix.training_methods import all_methods

    source, hp = _synthetic_source("augmix", n=96, device="cuda")
    model = build_model("wrn16_1", 10).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    index_batches = list(torch.arange(96).split(32))
    batches = source.batches(0, index_batches)  # views and device indices made here, outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_sum, seen = train_epoch(Forward(model, autocast=bf16_autocast(torch.device("cuda"), True)), opt, sched,
                                     batches, all_methods()["augmix"], hp, seed=0, epoch=0, device=torch.device("cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert seen == 96 and torch.isfinite(loss_sum).item()


@pytest.mark.slow  # a real inductor compilation (C++ on CPU): about 25 s
def test_compiled_first_shape_runs_other_shapes_eagerly():
    """Full batches go through one static-shape compiled graph; the short last batch runs eagerly
    (no second compilation), and both give the model's own outputs."""
    from torch._dynamo.utils import counters

    from augmix.train import CompiledFirstShape

    torch._dynamo.reset()
    counters.clear()
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU())
    fwd = CompiledFirstShape(model, "default")
    full, short = torch.randn(8, 6), torch.randn(3, 6)
    for x in (full, short, full, short):
        torch.testing.assert_close(fwd(x), model(x))
    assert fwd.shape == full.shape
    assert counters["stats"]["unique_graphs"] == 1  # compiled once, for the full batch only


def test_gpu_timing_script_trains_for_real_and_reports_the_wall_time(tmp_path):
    """workflow/scripts/gpu_measure.sh train100 (the #5 figure) at a CPU-sized scale."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(REPO / "workflow/scripts/gpu_measure.sh"), "train100", "--epochs", "2",
                           "--arch", "wrn16_1", "--n-train", "96", "--n-test", "32", "--no-compile"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and summary["n_train"] == 96 and summary["arch"] == "wrn16_1"
    assert summary["wall_s_from_start"] >= summary["seconds"] > 0
    assert (tmp_path / "train100.log").read_text().count("\n2,") == 1  # the per-epoch log is kept


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["standard", "cutout", "mixup", "cutmix", "autoaugment", "pgd", "fmix", "augmix",
                                    "augmix_nojsd"])
def test_every_method_trains_with_cuda_graphs(method):
    """`train.compile` with compile_mode reduce-overhead (CUDA graphs) under bf16 autocast, as the
    paper config would run it: full batches through the captured graph, the short one eagerly.
    PGD calls the model several times per step, which CUDA-graph trees must allow."""
    from augmix.models import build_model
    from augmix.train import CompiledFirstShape, Forward, bf16_autocast, train_epoch
    from augmix.training_methods import all_methods

    source, hp = _synthetic_source(method, n=80, device="cuda")
    if method == "pgd":
        hp["steps"] = 2
    model = build_model("wrn16_1", 10).cuda().to(memory_format=torch.channels_last).train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    fwd = Forward(model, CompiledFirstShape(model, "reduce-overhead"), bf16_autocast(torch.device("cuda"), True))
    for epoch in range(2):  # the second epoch replays the captured graph
        loss_sum, seen = train_epoch(fwd, opt, sched, source.batches(epoch, list(torch.arange(80).split(32))),
                                     all_methods()[method], hp, seed=0, epoch=epoch, device=torch.device("cuda"))
        assert seen == 80 and torch.isfinite(loss_sum).item()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
