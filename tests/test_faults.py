"""Fault tolerance, bad input and safety, each shown on the real CLI in a prepared work folder.

* a training run killed with SIGKILL at seeded random points resumes to a bit-identical model;
* a corruption-set build killed mid-way leaves nothing that passes as complete, and finishes on re-run;
* a truncated or tampered dataset archive is refused by its checksum;
* concurrent stage runs on one SQLite store lose nothing;
* broken params files and bad arguments stop with one message before any stage runs;
* source-level safety rules: weights-only checkpoint loading, no shell strings, loopback servers.
"""

from __future__ import annotations

import ast
import gzip
import inspect
import io as pyio
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from augmix import config, pipeline, tracking
from augmix.corruptions import BENCHMARK_CORRUPTIONS
from augmix.corruptions.build import is_complete
from augmix.data import Archive, DataError, fetch_cifar, load_split
from augmix.io import file_digest

from conftest import REPO, SMOKE_PARAMS
from support import services
from support.workers import STEPS, concurrent_stage_runs

KILL_SEED = 20200101  # seeds the choice of kill points (reproducible test)
KILL_POINTS = 3
RESUME_EPOCHS = 5
TRAIN_CELL = ("digits", "wrn16_1", "augmix")


def smoke() -> dict:
    return yaml.safe_load(SMOKE_PARAMS.read_text())


def env_for(store: Path) -> dict[str, str]:
    """The CLI's environment: our console scripts first, MLflow pointed at a store in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AUGMIX_", "DVC_"))}
    env.update({"AUGMIX_PROJECT_ROOT": str(store), "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return env


def write_params(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A prepared smoke work folder with the digits dataset downloaded (built) once."""
    wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("faults"), SMOKE_PARAMS)
    store = tmp_path_factory.mktemp("store")
    env = env_for(store)
    subprocess.run(["augmix", "download", "--dataset", "digits"], cwd=wd, env=env, check=True,
                   capture_output=True, text=True, timeout=300)
    return wd, env


# --------------------------------------------------------------------------------------------
# (a) training: SIGKILL at random points, resume, bit-identical model
# --------------------------------------------------------------------------------------------

EPOCH_LINE = re.compile(r"^\[train\] epoch\s+(\d+)\b")


def run_until_killed(cmd: list[str], cwd: Path, env: dict, after_epoch: int, fraction: float,
                     startup_delay: float) -> tuple[int, str]:
    """Start `cmd` and SIGKILL it: `startup_delay` s after the start when `after_epoch` is 0, else once
    it reports epoch `after_epoch` done, `fraction` of that epoch's own duration later (so the kill
    lands inside the next epoch or its checkpoint write whatever the machine's speed). Returns the
    exit status and what it printed."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    delay = startup_delay
    try:
        if after_epoch > 0:
            for line in proc.stdout:
                seen.append(line)
                m = EPOCH_LINE.match(line)
                if m and int(m.group(1)) >= after_epoch:
                    delay = fraction * float(re.search(r"([\d.]+) s\s*$", line).group(1))
                    break
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=120)
        return proc.returncode, "".join(seen) + (rest or "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def state_dicts_identical(a: dict, b: dict) -> list[str]:
    """Names of tensors that differ in dtype, shape or any bit."""
    assert a.keys() == b.keys()
    return [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]


@pytest.mark.slow  # SIGKILL mid-training
def test_training_killed_at_random_points_resumes_bit_identical(workdir):
    wd, env = workdir
    raw = smoke()
    raw["archs"]["wrn16_1"]["epochs"] = RESUME_EPOCHS
    raw["tracking"]["enabled"] = False  # not under test here; saves start-up time per restart
    # One intra-op thread: the test is about the resume logic, not about multi-threaded kernels (with
    # the default 2 threads one of 7 runs differed, under heavy machine load; see the issue-7 report).
    raw["train"]["threads"] = 1
    write_params(wd / "params-resume.yaml", raw)
    dataset, arch, method = TRAIN_CELL
    cmd = ["augmix", "train", "--params", "params-resume.yaml", "--dataset", dataset, "--arch", arch,
           "--method", method]
    cell = wd / "results" / dataset / arch / method / "seed1"
    ckpt = wd / "checkpoints" / dataset / arch / method / "seed1" / "last.pt"

    # The uninterrupted reference.
    subprocess.run(cmd, cwd=wd, env=env, check=True, capture_output=True, text=True, timeout=600)
    reference = torch.load(cell / "model.pt", weights_only=True)
    ref_log = pd.read_csv(cell / "train_log.csv")
    shutil.rmtree(cell)
    shutil.rmtree(ckpt.parent)

    # Seeded kill points: after which finished epoch (0 = during start-up or epoch 1), then how long.
    rng = np.random.default_rng(KILL_SEED)
    after = sorted(rng.choice(np.arange(0, RESUME_EPOCHS - 1), size=KILL_POINTS, replace=False).tolist())
    fractions = rng.uniform(0.0, 0.9, size=KILL_POINTS).tolist()
    startup_delays = rng.uniform(2.0, 7.0, size=KILL_POINTS).tolist()
    history = []
    for e, fraction, startup_delay in zip(after, fractions, startup_delays):
        delay = startup_delay if e == 0 else fraction  # for the message below
        start_epoch = torch.load(ckpt, weights_only=True)["epoch"] if ckpt.exists() else 0
        rc, out = run_until_killed(cmd, wd, env, e, fraction, startup_delay)
        assert rc == -signal.SIGKILL, f"run was not killed (exit {rc}) at point {(e, delay)}:\n{out[-2000:]}"
        assert not (cell / "model.pt").exists()  # an interrupted run never publishes a model
        if ckpt.exists():  # whatever is at the final name is a complete checkpoint
            state = torch.load(ckpt, weights_only=True)
            assert state["epoch"] >= e - 1 and len(state["log"]) == state["epoch"]
        history.append((e, round(delay, 2), torch.load(ckpt, weights_only=True)["epoch"] if ckpt.exists() else 0))
        if start_epoch > 0 and e > 0:  # it got past start-up, so it must have said where it resumed
            assert "resuming digits/wrn16_1/augmix/" in out and f"after epoch {start_epoch}" in out, out[-2000:]
    assert any(epoch > 0 for *_, epoch in history), f"no kill happened after a checkpoint: {history}"
    print(f"kill points (after epoch, start-up delay s or epoch fraction, checkpointed epoch): {history}")

    final = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    resumed_from = history[-1][2]
    assert resumed_from == 0 or f"after epoch {resumed_from}" in final.stdout
    # Only the remaining epochs ran: the checkpoint really carried the state, not a silent restart.
    ran = [int(m.group(1)) for m in map(EPOCH_LINE.match, final.stdout.splitlines()) if m]
    assert ran == list(range(resumed_from + 1, RESUME_EPOCHS + 1)), ran
    resumed = torch.load(cell / "model.pt", weights_only=True)
    differing = state_dicts_identical(reference["model"], resumed["model"])
    assert differing == [], f"kill points {history}: tensors differ: {differing[:5]}"
    log = pd.read_csv(cell / "train_log.csv")
    pd.testing.assert_frame_equal(log.drop(columns="seconds"), ref_log.drop(columns="seconds"), check_exact=True)


# --------------------------------------------------------------------------------------------
# (b) corruption-set build killed mid-way
# --------------------------------------------------------------------------------------------


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def kill_mid_build(cmd: list[str], cwd: Path, env: dict, parent: Path, name: str, after_files: int) -> int:
    """Start the build; once its temporary folder beside `parent/name` holds `after_files` .npy
    files (one per corruption), SIGKILL it. Returns the exit status."""
    before = set(parent.glob(f".{name}.*.tmp")) if parent.exists() else set()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            fresh = [d for d in parent.glob(f".{name}.*.tmp") if d not in before] if parent.exists() else []
            if fresh and len(list(fresh[0].rglob("*.npy"))) >= after_files:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # SIGKILL mid-build
def test_corruption_build_killed_midway_is_never_taken_for_complete(workdir):
    wd, env = workdir
    raw = smoke()
    names = list(BENCHMARK_CORRUPTIONS)  # the benchmark's 15: long enough to be killed inside
    raw["corruptions"]["names"] = names
    raw["corruptions"]["severities"] = [1, 2, 3, 4, 5]
    raw["tracking"]["enabled"] = False
    write_params(wd / "params-corrupt.yaml", raw)
    cmd = ["augmix", "corrupt", "--params", "params-corrupt.yaml", "--dataset", "digits"]
    parent = wd / "data" / "corrupted"
    out = parent / "digits"
    rng = np.random.default_rng(KILL_SEED + 1)
    kill_after = rng.integers(1, len(names) - 3, size=2).tolist()  # files written when killed

    # First build killed: no output folder at all, and nothing under data/corrupted passes as complete.
    rc = kill_mid_build(cmd, wd, env, parent, "digits", kill_after[0])
    assert rc == -signal.SIGKILL
    assert not out.exists(), f"killed after {kill_after[0]} files, yet {out} exists"
    assert not any(is_complete(d / "C") for d in parent.iterdir()), list(parent.iterdir())

    # Re-run finishes and is complete.
    subprocess.run(cmd, cwd=wd, env=env, check=True, capture_output=True, timeout=600)
    assert is_complete(out / "C", deep=True)
    first = tree_digest(out)
    assert {"C/labels.npy", *(f"C/{n}.npy" for n in names)} <= set(first)

    # A rebuild killed mid-way leaves the previous complete set in place (or, in the instant between
    # the two renames of the swap, no set at all), never a partial one.
    rc = kill_mid_build(cmd, wd, env, parent, "digits", kill_after[1])
    assert rc == -signal.SIGKILL
    if out.exists():
        assert tree_digest(out) == first and is_complete(out / "C", deep=True)
    complete = [d for d in parent.iterdir() if is_complete(d / "C")]
    assert complete in ([out], []), complete

    # And the re-run after that produces the same bytes (seeded generation).
    subprocess.run(cmd, cwd=wd, env=env, check=True, capture_output=True, timeout=600)
    assert tree_digest(out) == first


# --------------------------------------------------------------------------------------------
# (c) archive checksums
# --------------------------------------------------------------------------------------------


def cifar_like_archive(path: Path, folder: str = "cifar-10-batches-py", n: int = 20) -> Path:
    """A small .tar.gz in the official CIFAR-10 python layout (random pixels)."""
    rng = np.random.default_rng(0)
    buf = pyio.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, obj: dict) -> None:
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, pyio.BytesIO(data))

        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            add(name, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                       b"labels": rng.integers(0, 10, n).tolist()})
        add("batches.meta", {b"label_names": [str(i).encode() for i in range(10)]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def test_archive_checksum_accepts_intact_and_refuses_truncated_or_tampered(tmp_path):
    good = cifar_like_archive(tmp_path / "downloads" / "tiny.tar.gz")
    record = Archive("https://example.invalid/tiny.tar.gz", "tiny.tar.gz", file_digest(good), "cifar-10-batches-py")
    intact = good.read_bytes()
    out = fetch_cifar("cifar10", tmp_path / "raw", downloads=tmp_path / "downloads", download=False, archive=record)
    assert load_split(out, "train")[0].shape == (100, 32, 32, 3)

    tampered = bytearray(intact)
    tampered[len(tampered) // 2] ^= 0x01
    for label, blob in {"truncated": intact[: len(intact) // 2], "tampered": bytes(tampered)}.items():
        good.write_bytes(blob)
        target = tmp_path / f"raw-{label}"
        with pytest.raises(DataError, match="fails its checksum") as err:
            fetch_cifar("cifar10", target, downloads=tmp_path / "downloads", download=False, archive=record)
        assert str(good) in str(err.value)
        assert not target.exists() and not list(tmp_path.glob(f".raw-{label}*"))


@pytest.mark.slow  # augmix subprocesses
@pytest.mark.parametrize("kind", ["truncated", "tampered"])
def test_cli_refuses_a_bad_cifar_archive(workdir, kind):
    wd, env = workdir
    raw = smoke()
    assert raw["data"]["download"] is False  # so the stage must use the file that is there
    raw["tracking"]["enabled"] = False  # not under test; saves the MLflow start-up
    write_params(wd / "params-offline.yaml", raw)
    archive = wd / "data" / "downloads" / "cifar-10-python.tar.gz"
    blob = cifar_like_archive(archive).read_bytes()
    archive.write_bytes(blob[: len(blob) // 3] if kind == "truncated" else gzip.compress(b"not the archive" * 100))
    try:
        out = subprocess.run(["augmix", "download", "--params", "params-offline.yaml", "--dataset", "cifar10"],
                             cwd=wd, env=env,
                             capture_output=True, text=True, timeout=120)
    finally:
        archive.unlink()
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("augmix: error: "), out.stderr
    assert "data/downloads/cifar-10-python.tar.gz" in lines[0] and "checksum" in lines[0]
    assert not (wd / "data" / "raw" / "cifar10").exists()


# --------------------------------------------------------------------------------------------
# (d) concurrent writers on one SQLite store
# --------------------------------------------------------------------------------------------

WRITERS = 6


@pytest.mark.slow  # concurrent processes on one store
def test_concurrent_stage_runs_on_one_sqlite_store_lose_nothing(tmp_path):
    """Six processes open a stage run on a store nobody has created yet (the harshest start) and log
    params, metric series and tags at the same time."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    found = concurrent_stage_runs(WRITERS, uri=uri, experiment="concurrency", workdir=tmp_path)
    assert found["n_runs"] == WRITERS, found
    assert found["statuses"] == {"FINISHED"}
    assert found["complete_metrics"] == WRITERS, f"runs missing some of {STEPS} steps or params: {found}"
    assert found["reported_equals_stored"] and found["writers"] == [str(i) for i in range(WRITERS)]


# --------------------------------------------------------------------------------------------
# 4. bad input: one message, exit 2, and nothing runs
# --------------------------------------------------------------------------------------------


def _set(path: str, value):
    def mutate(raw: dict) -> dict:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value
        return raw
    return mutate


def _drop(path: str):
    def mutate(raw: dict) -> dict:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        del node[last]
        return raw
    return mutate


# (case id, mutation of the smoke params or None for "no file", text the one message must contain)
BAD_PARAMS = [
    ("unknown-key", _set("methods.augmix.widht", 3), "methods.augmix.widht: unknown key"),
    ("unknown-section", _set("trainer", {"lr": 0.1}), "trainer: unknown key"),
    ("missing-key", _drop("eval.calib_mode"), "eval.calib_mode: missing key"),
    ("wrong-type-str", _set("archs.wrn16_1.lr", "fast"), "archs.wrn16_1.lr: input should be a valid number"),
    ("wrong-type-bool", _set("archs.wrn16_1.epochs", True), "archs.wrn16_1.epochs: input should be a valid integer"),
    ("wrong-type-list", _set("grid.archs", "wrn16_1"), "grid.archs: input should be a valid list"),
    ("out-of-range", _set("methods.augmix.severity", 11),
     "methods.augmix.severity: input should be less than or equal to 10"),
    ("out-of-range-severity", _set("corruptions.severities", [1, 6]),
     "corruptions.severities[1]: input should be less than or equal to 5"),
    ("empty-grid", _set("grid.methods", []), "grid.methods: list should have at least 1 item"),
    ("unknown-dataset", _set("grid.datasets", ["mnist"]), "grid.datasets[0]: no dataset 'mnist' in datasets"),
    ("arch-without-recipe", _set("grid.archs", ["vgg16"]), "grid.archs[0]: 'vgg16' has no recipe in archs"),
    ("unknown-method", _set("grid.methods", ["augmax"]), "grid.methods[0]: unknown method 'augmax'"),
    ("imagenet-without-folder", _set("imagenet.datasets", ["imagenet"]), "datasets.imagenet.dir: required"),
    ("imagenet-in-cifar-grid", _set("grid.datasets", ["digits", "imagenet"]),
     "grid.datasets[1]: imagenet is an image-folder dataset"),
    ("old-layout", _set("optim", {"lr": 0.1}), "optim: moved to archs.<arch>"),
    ("not-yaml", "grid: [unclosed\n", "not valid YAML"),
    ("missing-file", None, "params.yaml not found"),
]
# Names only the code's tables know (corruptions, architectures in `archs`, released-model files): the
# pipeline's `check` refuses them before any job (and `augmix repro` before starting DVC); a stage that
# does not read them (train does not read the corruption list) runs.
BAD_NAMES = [
    ("unknown-corruption", _set("corruptions.names", ["gaussian_nois"]),
     "corruptions.names[0]: unknown corruption 'gaussian_nois'"),
    ("unknown-arch", _set("archs.vgg16", {"epochs": 1, "batch_size": 8, "lr": 0.1, "lr_min": 0.0, "momentum": 0.9,
                                          "nesterov": True, "weight_decay": 0.0}), "archs.vgg16: unknown architecture"),
]


@pytest.fixture(scope="module")
def clean_workdir(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """A prepared work folder in which nothing has run yet."""
    wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("badinput"), SMOKE_PARAMS)
    store = tmp_path_factory.mktemp("badstore")
    return wd, env_for(store), store


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def assert_one_clear_error(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout[-1000:], out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("augmix: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("case,mutate,needle", BAD_PARAMS,
                         ids=[c.values[0] if hasattr(c, "values") else c[0] for c in BAD_PARAMS])
def test_bad_params_stop_train_and_repro_before_anything_runs(clean_workdir, case, mutate, needle):
    _refused_everywhere(clean_workdir, mutate, needle, ("train", "repro"))


@pytest.mark.slow  # runs dvc repro
@pytest.mark.parametrize("case,mutate,needle", BAD_NAMES, ids=[c[0] for c in BAD_NAMES])
def test_bad_names_stop_check_and_repro_before_anything_runs(clean_workdir, case, mutate, needle):
    _refused_everywhere(clean_workdir, mutate, needle, ("check", "repro"))


def _refused_everywhere(clean_workdir, mutate, needle, commands):
    wd, env, store = clean_workdir
    good = (wd / "params.yaml").read_text()
    if mutate is None:
        (wd / "params.yaml").unlink()
    elif isinstance(mutate, str):
        (wd / "params.yaml").write_text(mutate)
    else:
        write_params(wd / "params.yaml", mutate(smoke()))
    before = snapshot(wd)
    try:
        # Both at once (2 cores): a stage command and the whole pipeline wrapper.
        every = {"train": ["augmix", "train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"],
                 "check": ["augmix", "check"], "repro": ["augmix", "repro"]}
        procs = {name: subprocess.Popen(every[name], cwd=wd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name in commands}
        outs = {}
        for name, p in procs.items():
            stdout, stderr = p.communicate(timeout=300)
            outs[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    finally:
        (wd / "params.yaml").write_text(good)
    for out in outs.values():
        assert_one_clear_error(out, needle)
    after = snapshot(wd)
    after.pop("params.yaml", None)
    before.pop("params.yaml", None)
    assert after == before, sorted(set(after) ^ set(before))  # no data/, results/, dvc.lock, .dvc/tmp
    assert not (wd / "data").exists() and not (wd / "results").exists()
    assert list(store.iterdir()) == []  # no MLflow store, so no run


BAD_ARGS = [
    (["trian", "--dataset", "digits"], "invalid choice: 'trian'"),
    (["train", "--dataset", "digits", "--arch", "wrn16_1"], "--method"),
    (["train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard", "--epochs", "3"], "--epochs"),
    (["repro", "--runner", "make"], "--runner: invalid choice: 'make'"),
    (["repro", "--jobs", "two"], "--jobs: invalid int value: 'two'"),
    (["download", "--dataset", "mnist"], "--dataset: no dataset 'mnist' in datasets"),
    # past argparse: the process imports the models and methods (about 4 s each; test_cli checks the same
    # refusals in-process)
    pytest.param(["train", "--dataset", "digits", "--arch", "vgg16", "--method", "standard"],
                 "--arch: unknown architecture 'vgg16'", marks=pytest.mark.slow),
    pytest.param(["train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "augmax"],
                 "--method: unknown method 'augmax'", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("argv,needle", BAD_ARGS,
                         ids=[" ".join(getattr(c, "values", c)[0][:2]) + f"-{i}" for i, c in enumerate(BAD_ARGS)])
def test_bad_arguments_stop_with_one_message(clean_workdir, argv, needle):
    wd, env, store = clean_workdir
    before = snapshot(wd)
    out = subprocess.run(["augmix", *argv], cwd=wd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and needle in errors[0], out.stderr  # argparse adds only a usage line
    assert snapshot(wd) == before and list(store.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 5. safety rules over the sources
# --------------------------------------------------------------------------------------------

SOURCES = sorted((REPO / "src" / "augmix").rglob("*.py"))


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def offenders(rule) -> list[str]:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in calls(tree):
            if rule(call):
                found.append(f"{path.relative_to(REPO)}:{call.lineno}: {ast.unparse(call)[:120]}")
    return found


def test_sources_are_parsed():
    assert len(SOURCES) > 10 and any(p.name == "train.py" for p in SOURCES)


def test_every_torch_load_is_weights_only():
    def unsafe(call: ast.Call) -> bool:
        flag = keyword(call, "weights_only")
        return dotted(call.func) == "torch.load" and not (isinstance(flag, ast.Constant) and flag.value is True)

    assert offenders(unsafe) == []
    n_loads = len(offenders(lambda c: dotted(c.func) == "torch.load"))
    assert n_loads >= 2  # train.py resumes and loads models: the rule has something to check


def test_no_shell_strings_are_run():
    def shell(call: ast.Call) -> bool:
        flag = keyword(call, "shell")
        return (isinstance(flag, ast.Constant) and flag.value is True) or dotted(call.func) in (
            "os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "os.execl", "os.execlp")

    assert offenders(shell) == []
    text = "\n".join(p.read_text() for p in SOURCES)
    assert "shell=True" not in text and "os.system" not in text


def test_no_unsafe_deserialisers_or_extraction():
    def unsafe(call: ast.Call) -> bool:
        name = dotted(call.func)
        if name == "yaml.load":  # only with a loader that builds plain data (SafeLoader or ours on it)
            loader = keyword(call, "Loader")
            return loader is None or dotted(loader).rsplit(".", 1)[-1] not in SAFE_LOADERS
        if name in ("yaml.unsafe_load", "yaml.full_load", "eval", "exec"):
            return True
        if name.endswith(".extractall"):
            # Tar member paths must be filtered (no ../ or absolute escapes): either tarfile's own
            # filter="data", or an explicit list of members the caller has vetted.
            return keyword(call, "filter") is None and keyword(call, "members") is None
        return False

    assert offenders(unsafe) == []
    assert issubclass(config.Yaml12Loader, yaml.SafeLoader)  # ours adds YAML 1.2 floats, nothing else


SAFE_LOADERS = ("SafeLoader", "CSafeLoader", "Yaml12Loader")


def test_servers_bind_to_loopback():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^ui:.*\n((?:\t.*\n?)+)", makefile, re.M)
    assert recipe, "Makefile has no ui target"
    assert "augmix ui" in recipe.group(1)  # which serves on 127.0.0.1 only (no --host to change it)

    assert inspect.signature(tracking.ui).parameters["host"].default == "127.0.0.1"
    for path in [REPO / "Makefile", *SOURCES, REPO / "tests" / "support" / "services.py"]:
        assert "0.0.0.0" not in path.read_text(), path

    assert services.LOOPBACK == "127.0.0.1"
