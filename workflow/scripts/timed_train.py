"""A real `augmix train` run on random CIFAR-format data, timed from process start (the #5 figure).

    python workflow/scripts/timed_train.py [--epochs 100] [--arch wrn40_2] [--method augmix]
                                           [--n-train 50000] [--n-test 10000] [--no-compile]

Writes the data and a params file (params.yaml with tracking off, `train.compile` on and the arch's
epochs set) into a temporary folder, trains there, and prints the train summary plus the wall time
since the interpreter started as one JSON line. Tracking is off because the timing is the point and
GPU hosts may lack MLflow.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # before torch is imported: the wall time a user waits

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--arch", default="wrn40_2")
    ap.add_argument("--method", default="augmix")
    ap.add_argument("--n-train", type=int, default=50_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    from augmix import config, jobs
    from augmix.data import write_cifar10_format
    from augmix.tracking import NullRun
    from augmix.train import train

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        split = [(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
                 for n in (args.n_train, args.n_test)]
        write_cifar10_format(work / "raw" / "cifar-10-batches-py", split[0], split[1], [str(i) for i in range(10)])
        raw = yaml.safe_load(Path(args.params).read_text())
        raw["tracking"]["enabled"] = False
        raw["train"]["compile"] = not args.no_compile
        raw["archs"].setdefault(args.arch, dict(raw["archs"]["wrn40_2"]))["epochs"] = args.epochs
        params = config.parse(raw)
        job = jobs.Job("train", "cifar10", args.arch, args.method, 1)
        summary = train(jobs.view(params, job), job, raw_dir=work / "raw", out_dir=work / "out",
                        checkpoint=work / "ckpt.pt", fingerprint=jobs.fingerprint(job, params),
                        job_params=jobs.resolved(job, params), run=NullRun())
        log = (work / "out" / "train_log.csv").read_text()
    print(log, end="")
    print(json.dumps({**summary, "wall_s_from_start": round(time.monotonic() - T0, 1)}))


if __name__ == "__main__":
    main()
