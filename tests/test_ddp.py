"""Data parallel through torchrun: 2 CPU processes on gloo train the same global batch as one process.

BatchNorm statistics are per process under DDP (each rank normalises its half of the batch; SyncBN
needs CUDA), so the two runs agree within a tolerance, not bit for bit: the weight updates of the two
runs must point the same way and have about the same size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from augmix import data
from augmix.models import build_model

from conftest import SMOKE_PARAMS

pytestmark = pytest.mark.slow  # DDP: gloo process groups and torchrun


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["model"]
    return {k: v.float() for k, v in state.items() if "running" not in k and "num_batches" not in k}


def test_two_gloo_processes_match_one_process(tmp_path):
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["tracking"]["enabled"] = False
    raw["subset"]["train"] = 128
    raw["archs"]["wrn16_1"]["batch_size"] = 32
    raw["train"].update(threads=1, nproc=2)  # the world size is part of the recipe (BatchNorm per rank)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    data.build_digits(tmp_path / "data" / "raw" / "digits", test_fraction=0.2, seed=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUGMIX_PROJECT_ROOT": str(tmp_path)}
    cmd = ["-m", "augmix", "train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    subprocess.run([*torchrun, *cmd], cwd=tmp_path, env=env, check=True, capture_output=True)
    model = tmp_path / "results/digits/wrn16_1/standard/seed1/model.pt"
    ddp = _weights(model)
    summary = yaml.safe_load((model.parent / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["n_train"] == 128

    shutil.rmtree(tmp_path / "results")
    shutil.rmtree(tmp_path / "checkpoints")
    raw["train"]["nproc"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run([sys.executable, *cmd], cwd=tmp_path, env=env, check=True, capture_output=True)
    single = _weights(model)

    torch.manual_seed(1)  # the same initial weights the training started from (seed 1)
    init = {k: v.float() for k, v in build_model("wrn16_1", 10).state_dict().items() if k in single}
    u_ddp = torch.cat([(ddp[k] - init[k]).flatten() for k in init])
    u_one = torch.cat([(single[k] - init[k]).flatten() for k in init])
    cosine = float(u_ddp @ u_one / (u_ddp.norm() * u_one.norm()))
    ratio = float(u_ddp.norm() / u_one.norm())
    # Not equal: BatchNorm normalises each rank's 16 samples, not the 32 of the global batch (and the
    # per-epoch test error runs per rank). Measured for this seed: cosine 0.54, ratio 1.16; two
    # unrelated runs of 4 steps give a cosine near 0.
    assert cosine > 0.4 and 0.7 < ratio < 1.3, (cosine, ratio)


def test_train_nproc_runs_the_same_command_under_torchrun(tmp_path):
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["tracking"]["enabled"] = False
    raw["subset"]["train"] = 64
    raw["train"]["nproc"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    data.build_digits(tmp_path / "data" / "raw" / "digits", test_fraction=0.2, seed=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUGMIX_PROJECT_ROOT": str(tmp_path)}
    subprocess.run(["augmix", "train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    summary = yaml.safe_load((tmp_path / "results/digits/wrn16_1/standard/seed1/train_summary.json").read_text())
    assert summary["world_size"] == 2


def test_a_world_size_other_than_the_recipe_is_refused(tmp_path):
    """torchrun by hand with train.nproc 1: the job would train a recipe its params do not record."""
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["tracking"]["enabled"] = False
    raw["subset"]["train"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    data.build_digits(tmp_path / "data" / "raw" / "digits", test_fraction=0.2, seed=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUGMIX_PROJECT_ROOT": str(tmp_path)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, "-m", "augmix", "train", "--dataset", "digits", "--arch", "wrn16_1",
                           "--method", "standard"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "train.nproc is 1 but this job runs as 2 processes" in done.stderr


@pytest.mark.slow
def test_imagenet_nproc_trains_resnet50_under_torchrun(tmp_path):
    """The ImageNet rule's command with imagenet.nproc 2: two gloo ranks stream their halves of each
    batch from the image folder; rank 0 writes the model."""
    from test_imagenet import make_folder

    folder = make_folder(tmp_path / "inet", {"train": 4, "val": 2})
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["tracking"]["enabled"] = False
    raw["datasets"]["imagenet"]["dir"] = str(folder)
    raw["subset"].update(train=0, test=0)
    raw["imagenet"].update(datasets=["imagenet"], nproc=2, image_size=32, resize=36)
    raw["imagenet"]["recipe"].update(epochs=1, batch_size=6)
    raw["runtime"]["workers"] = 1
    raw["train"]["threads"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUGMIX_PROJECT_ROOT": str(tmp_path)}
    subprocess.run(["augmix", "download", "--dataset", "imagenet"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    done = subprocess.run(["augmix", "train", "--dataset", "imagenet", "--arch", "resnet50", "--method", "augmix"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = yaml.safe_load((tmp_path / "results/imagenet/resnet50/augmix/seed1/train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["n_train"] == 12 and summary["n_test"] == 6
