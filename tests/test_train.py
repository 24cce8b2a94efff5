"""The training loop: schedule, epoch-level view precomputation, exact resume, every method runs."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml

from augmix import bench_train, config, data, jobs
from augmix.augment import EpochViews, base_transform_batch, make_views
from augmix.jobs import Job
from augmix.methods import Batch
from augmix.models import build_model
from augmix.rng import SampleKeys, derive_seed
from augmix.sources import Run, Split, TensorSource
from augmix.tracking import NullRun
from augmix.train import CompiledFirstShape, Forward, bf16_autocast, cosine_factor, train, train_epoch
from augmix.training_methods import METHODS, TrainBatch, method_hparams

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


def _train(params, method, raw, out, *, stop=None, seed=1):
    """One cell through the library's train(), reading params as the stage does (the job's view)."""
    job = Job("train", "digits", "wrn16_1", method, seed)
    view = jobs.view(params, job)
    result = train(view, job, raw_dir=raw, out_dir=out, checkpoint=out.with_suffix(".pt"),
                   fingerprint=jobs.fingerprint(job, params), job_params=jobs.resolved(job, params), run=NullRun(),
                   stop_after_epoch=stop)
    return result, view


def _hp(method, **override):
    hp = method_hparams(_params(), method, "digits")
    if "backend" in type(hp).model_fields:  # AugMix: the batched path, as on a GPU
        override = {"backend": "tensor", **override}
    return hp.model_copy(update=override)


def test_cosine_schedule_matches_reference_values():
    # REF cifar.py get_lr with lr 0.1 -> 1e-6: factor 1 at 0, 0.500005 at T/2, 1e-5 at T.
    r = 1e-6 / 0.1
    assert cosine_factor(0, 1000, r) == 1.0
    assert math.isclose(cosine_factor(500, 1000, r), 0.500005, rel_tol=1e-12)
    assert math.isclose(cosine_factor(1000, 1000, r), r, rel_tol=1e-12)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed("step", 1, 2, 3) == derive_seed("step", 1, 2, 3)
    assert len({derive_seed("step", 1, e, s) for e in range(10) for s in range(10)}) == 100
    assert derive_seed("step", 1, 2, 3) != derive_seed("shuffle", 1, 2, 3)  # named streams are independent


def test_epoch_views_equal_per_step_views():
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    hp = _hp("augmix")
    method = METHODS["augmix"]
    pre = EpochViews(x, 7, 3, method.epoch_views(hp), method.n_views, chunk=16)  # chunks unlike the batch
    idx = torch.tensor([41, 3, 17, 29, 0])
    keys = SampleKeys(7, 3, idx)
    base = base_transform_batch(x[idx], keys)
    assert torch.equal(pre.base[idx], base)
    expected = make_views(base, keys, jsd=True, backend="tensor", severity=3, width=3, depth=-1, alpha=1.0,
                          all_ops=False)
    assert torch.equal(pre.batch_views(idx), expected)
    assert method.epoch_views(_hp("augmix", backend="pil")) is None  # PIL stays per step
    assert _hp("augmix", backend="auto").backend == "auto" and METHODS["augmix"].epoch_views(
        _hp("augmix", backend="auto")) is not None  # auto: the batched path on every device


def _state(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.slow  # interrupts and resumes a training run
@pytest.mark.parametrize("backend", ["tensor", "pil"])
def test_interrupted_run_resumes_bit_identical(tmp_path, digits, backend, capsys):
    small = {"subset.train": 96, "archs.wrn16_1.epochs": 3, "archs.wrn16_1.batch_size": 32,
             "methods.augmix.backend": backend}
    params = _params(**small)
    _train(params, "augmix", digits, tmp_path / "a")
    stopped, _ = _train(params, "augmix", digits, tmp_path / "b", stop=1)
    assert stopped == {"stopped_after_epoch": 1} and not (tmp_path / "b" / "model.pt").exists()
    # A run-time key changed meanwhile (the log interval, the evaluation batch): the checkpoint is kept.
    resumed = _params(**small, **{"runtime.log_every": 7, "runtime.eval_batch_size": 33})
    capsys.readouterr()
    summary, _ = _train(resumed, "augmix", digits, tmp_path / "b")
    assert "resuming" in capsys.readouterr().out and summary["resumed_from_epoch"] == 1
    a, b = _state(tmp_path / "a" / "model.pt"), _state(tmp_path / "b" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()  # finished: no resume point
    # A checkpoint from other params (a recipe key of this job) is not resumed from.
    _train(params, "augmix", digits, tmp_path / "c", stop=1)
    other = _params(**small, **{"methods.augmix.severity": 4})
    capsys.readouterr()
    _train(other, "augmix", digits, tmp_path / "c")
    out = capsys.readouterr().out
    assert "ignoring checkpoint" in out and out.count("[train] epoch") == 3


def test_model_file_depends_only_on_the_keys_the_job_reads(tmp_path, digits):
    """Another method's section, a run-time key and the tracking settings change no byte of model.pt;
    the job's own keys do."""
    small = {"subset.train": 32, "subset.test": 50, "archs.wrn16_1.epochs": 1, "archs.wrn16_1.batch_size": 16}
    _train(_params(**small), "standard", digits, tmp_path / "a")
    _train(_params(**small, **{"methods.augmix.severity": 5, "methods.mixup.alpha": 0.5, "runtime.log_every": 3,
                               "tracking.experiment": "other"}), "standard", digits, tmp_path / "b")
    _train(_params(**small, **{"archs.wrn16_1.lr": 0.05}), "standard", digits, tmp_path / "c")
    a, b, c = ((tmp_path / n / "model.pt").read_bytes() for n in "abc")
    assert a == b and a != c
    saved = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert set(saved["params"]) == {"datasets", "archs", "methods", "train", "subset"}
    assert set(saved["params"]["methods"]) == {"standard"} and set(saved["params"]["archs"]) == {"wrn16_1"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_job_reads_exactly_the_keys_it_declares(tmp_path, digits, method):
    """Recording: every key the training code reads is declared (jobs.view refuses any other), and
    every declared key is read (nothing declared re-runs the job for nothing)."""
    params = _params(**{"subset.train": 32, "subset.test": 40, "archs.wrn16_1.epochs": 1,
                        "archs.wrn16_1.batch_size": 16, "methods.pgd.steps": 1})
    _, view = _train(params, method, digits, tmp_path / "out")
    job = Job("train", "digits", "wrn16_1", method, 1)
    assert jobs.reads(view) == jobs.declared_leaves(params, job)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_through_the_loop(tmp_path, digits, method):
    params = _params(**{"subset.train": 32, "subset.test": 100, "archs.wrn16_1.epochs": 1,
                        "archs.wrn16_1.batch_size": 16, "methods.pgd.steps": 1})
    summary, _ = _train(params, method, digits, tmp_path / "out")
    assert summary["method"] == method and math.isfinite(summary["final_train_loss"])
    assert 0.0 <= summary["final_test_error"] <= 1.0
    assert (tmp_path / "out" / "model.pt").exists() and (tmp_path / "out" / "train_log.csv").exists()


def _synthetic_source(method, n=40, device="cpu", **override):
    hp = _hp(method, **override)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    return TensorSource(Run(1, METHODS[method], hp, 100), Split(x, y), Split(x[:8], y[:8]), 10), hp


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
    hp = _hp(method)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    batch = TrainBatch(x=x.float() / 255, y=torch.arange(16) % 10, num_classes=10, x_uint8=x,
                       keys=SampleKeys(0, 0, torch.arange(16)), views=None)
    net = build_model("wrn16_1", 10).eval()
    seen = {}
    for amp in (False, True):
        rec = _Recorder(net)
        fwd = Forward(net, rec, torch.autocast("cpu", dtype=torch.bfloat16) if amp else None)
        loss, _ = METHODS[method].step(fwd, batch, hp, torch.Generator().manual_seed(7))
        assert loss.dtype == torch.float32 and fwd(batch.x).dtype == torch.float32
        seen[amp] = rec.seen[0]
    assert torch.equal(seen[False][0], seen[True][0])
    assert (seen[False][1], seen[True][1]) == (False, True)


def test_forward_reads_model_attributes_through_wrappers():
    """Cutout fills with the model's normalisation mean even when the network is wrapped (compiled,
    DDP), which has no `normalize` of its own: the fill was black before."""
    net = build_model("wrn16_1", 10)
    rec = _Recorder(net)
    wrapped = Forward(net, lambda x: rec(x))  # a wrapper without attributes, as CompiledFirstShape
    batch = Batch(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 10)
    METHODS["cutout"].step(wrapped, batch, _hp("cutout"), torch.Generator().manual_seed(0))
    assert set(rec.seen[0][0].unique().tolist()) == {0.0, 0.5}  # 0.5: zero after 0.5/0.5 normalisation


def test_source_batches_are_the_epoch_views_of_each_index_batch():
    """One host-to-device copy per epoch gives the same batches as indexing step by step."""
    source, hp = _synthetic_source("augmix")
    index_batches = list(torch.randperm(40, generator=torch.Generator().manual_seed(3)).split(16))
    batches = list(source.batches(5, index_batches))
    assert [len(b.y) for b in batches] == [16, 16, 8]
    views = EpochViews(source.train.x, 1, 5, METHODS["augmix"].epoch_views(hp), 3)
    for idx, batch in zip(index_batches, batches):
        assert torch.equal(batch.views, views.batch_views(idx))
        assert torch.equal(batch.y, source.train.y[idx])
        assert torch.equal(batch.keys.index, SampleKeys(1, 5, idx).index)
    assert list(source.batches(5, [])) == []


def test_bench_train_quick_reports_consistent_figures():
    r = bench_train.run(quick=True, device="cpu", full_epoch=True)
    assert r["arch"] == "wrn16_1" and r["device"] == "cpu" and r["timed_steps"] == 3
    steps_per_epoch = math.ceil(r["epoch_samples"] / r["batch_size"])
    expected = r["augmentation_s_per_epoch"] + steps_per_epoch * r["step_ms"] / 1e3
    assert math.isclose(r["epoch_s_estimate"], expected, rel_tol=0.02, abs_tol=0.02)
    assert 0 < r["augmentation_share"] < 1 and r["full_epoch_s"] > 0
    table = bench_train.format_table(r)
    assert all(line.split()[0] in r for line in table.splitlines()) and len(table.splitlines()) == len(r)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_steps_never_wait_for_the_device():
    """The step loop reads nothing back to the host: with the sync debug mode set to error, a few
    AugMix+JSD steps (views made up front, as in training) run through."""
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
                                     batches, METHODS["augmix"].step, hp, seed=0, epoch=0, device=torch.device("cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert seen == 96 and torch.isfinite(loss_sum).item()


@pytest.mark.slow  # a real inductor compilation (C++ on CPU): about 25 s
def test_compiled_first_shape_runs_other_shapes_eagerly():
    """Full batches go through one static-shape compiled graph; the short last batch runs eagerly
    (no second compilation), and both give the model's own outputs."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU())
    fwd = CompiledFirstShape(model, "default")
    full, short = torch.randn(8, 6), torch.randn(3, 6)
    for x in (full, short, full, short):
        torch.testing.assert_close(fwd(x), model(x))
    assert fwd.shape == full.shape
    assert counters["stats"]["unique_graphs"] == 1  # compiled once, for the full batch only


@pytest.mark.slow  # benchmark script
def test_gpu_timing_script_trains_for_real_and_reports_the_wall_time(tmp_path):
    """workflow/scripts/gpu_measure.sh train100 (the #5 figure) at a CPU-sized scale."""
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(REPO / "workflow/scripts/gpu_measure.sh"), "train100", "--epochs", "2",
                           "--arch", "wrn16_1", "--n-train", "96", "--n-test", "32", "--no-compile"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and summary["n_train"] == 96 and summary["arch"] == "wrn16_1"
    assert summary["wall_s_from_start"] >= summary["seconds"] > 0
    assert (tmp_path / "train100.log").read_text().count("\n2,") == 1  # the per-epoch log is kept


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["standard", "cutout", "mixup", "cutmix", "autoaugment", "pgd", "fmix", "augmix",
                                    "augmix_nojsd"])
def test_every_method_trains_with_cuda_graphs(method):
    """`train.compile` with compile_mode reduce-overhead (CUDA graphs) under bf16 autocast, as the
    paper config would run it: full batches through the captured graph, the short one eagerly.
    PGD calls the model several times per step, which CUDA-graph trees must allow."""
    source, hp = _synthetic_source(method, n=80, device="cuda", **({"steps": 2} if method == "pgd" else {}))
    model = build_model("wrn16_1", 10).cuda().to(memory_format=torch.channels_last).train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    fwd = Forward(model, CompiledFirstShape(model, "reduce-overhead"), bf16_autocast(torch.device("cuda"), True))
    for epoch in range(2):  # the second epoch replays the captured graph
        loss_sum, seen = train_epoch(fwd, opt, sched, source.batches(epoch, list(torch.arange(80).split(32))),
                                     METHODS[method].step, hp, seed=0, epoch=epoch, device=torch.device("cuda"))
        assert seen == 80 and torch.isfinite(loss_sum).item()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
