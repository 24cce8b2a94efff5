"""Concurrent writers: N separate Python processes, each opening one stage run through
`augmix.tracking.stage_run` against one store at the same moment and logging params and metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import SMOKE_PARAMS

STEPS = 10  # metric points per writer and key (one batch per step, as training logs per epoch)
KEYS = ("train_loss", "test_error")

# Each writer imports everything first, then waits for a common start time, so the runs are
# created and written concurrently rather than one after the other.
_WORKER = r"""
import json, pathlib, sys, time
import yaml
from augmix import config, tracking
from augmix.jobs import Job

index, barrier, params_file = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
params = config.parse(yaml.safe_load(open(params_file)))
import mlflow, torch  # noqa: F401  (paid before the barrier, not inside the race)
(barrier / f"ready-{index}").touch()
while not (barrier / "go").exists():
    time.sleep(0.01)
with tracking.stage_run(params, Job("train", "digits", "wrn16_1", "augmix", index)) as run:
    for step in range(1, STEPS + 1):
        run.log_metrics({"train_loss": 1.0 / step + index, "test_error": 0.5 / step}, step=step)
    run.set_tags({"writer": str(index)})
    print("RUN_ID=" + run.run_id, flush=True)
""".replace("STEPS", str(STEPS))


def concurrent_stage_runs(n: int, *, uri: str, experiment: str, workdir: Path, timeout: float = 180) -> dict:
    """Start `n` writers, wait for them, and read the store back: what was found."""
    script = workdir / "writer.py"
    script.write_text(_WORKER)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": experiment}
    env.pop("AUGMIX_PARENT_RUN_ID", None)
    barrier = workdir / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(barrier), str(SMOKE_PARAMS)],
                              cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    deadline = time.monotonic() + timeout
    while len(list(barrier.glob("ready-*"))) < n:  # every writer has paid its imports
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            for p in procs:
                p.kill()
            raise AssertionError(f"writers did not all start: {[p.poll() for p in procs]}")
        time.sleep(0.05)
    (barrier / "go").touch()
    outputs = [p.communicate(timeout=timeout) for p in procs]
    failures = [(p.returncode, err[-2000:]) for p, (_, err) in zip(procs, outputs) if p.returncode != 0]
    if failures:
        raise AssertionError(f"{len(failures)} of {n} writers failed: {failures}")
    # MLflow itself prints "View run ..." lines on a server: pick our marker line.
    reported = {line[len("RUN_ID="):] for out, _ in outputs for line in out.splitlines() if line.startswith("RUN_ID=")}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    complete = 0
    for run in runs:
        histories = {k: client.get_metric_history(run.info.run_id, k) for k in KEYS}
        ok = all(sorted(m.step for m in h) == list(range(1, STEPS + 1)) for h in histories.values())
        ok = ok and run.data.params.get("archs.wrn16_1.batch_size") is not None and "writer" in run.data.tags
        complete += ok
    return {
        "n_runs": len(runs),
        "statuses": {r.info.status for r in runs},
        "complete_metrics": complete,
        "reported_equals_stored": reported == {r.info.run_id for r in runs},
        "writers": sorted(r.data.tags.get("writer", "") for r in runs),
    }
