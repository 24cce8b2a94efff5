"""Benchmark: AugMix JSD tuples (clean + 2 views) per second, PIL path versus batched path.

Protocol (docs/reference-facts.md, "Benchmarks"): width 3, depth -1, severity 3, alpha 1, 9 ops; inputs
are already flipped and cropped uint8 images; one warm-up call, then `repeats` timed passes,
interleaving the paths so that load from other processes hits them alike; the median pass
and the best pass are reported. The PIL path and the batched CPU path run on one thread
(torch.set_num_threads(1)); the CUDA path, when present, is timed with synchronisation.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from augmix.augment import make_views
from augmix.rng import SampleKeys


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth synthetic uint8 images (content barely matters for speed: docs/reference-facts.md, "Benchmarks")."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    f = g.uniform(0.5, 4.0, (n, 3, 1, 1))
    ph = g.uniform(0, 2 * np.pi, (n, 3, 1, 1))
    img = 0.5 + 0.25 * np.sin(2 * np.pi * f * xx + ph) + 0.25 * np.cos(2 * np.pi * f * yy - ph)
    img = img * 255 + g.normal(0, 4, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


def _timer(fn, device: str):
    def run() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    return run


def _measure_size(size: int, n: dict[str, int], devices: list[str], repeats: int) -> dict:
    paths = {"pil_1core": ("pil", "cpu"), "batched_cpu": ("tensor", "cpu")}
    if "cuda" in devices:
        paths["batched_cuda"] = ("tensor", "cuda")
    runs = {}
    for name, (backend, dev) in paths.items():
        count = n[name]
        x = _images(count, size).to(dev)
        keys = SampleKeys.arange(0, 0, count, device=dev)

        # As training's EpochViews does, the views go into a buffer allocated once.
        buffer = torch.empty(3, *x.shape, dtype=torch.float32, device=dev)

        def call(x=x, keys=keys, backend=backend, buffer=buffer):
            return make_views(x, keys, jsd=True, backend=backend, out=buffer)

        runs[name] = (_timer(call, dev), count)
        runs[name][0]()  # warm-up
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, _) in runs.items():
            times[name].append(run())
    out = {}
    for name, (_, count) in runs.items():
        t = np.array(times[name])
        out[name] = {
            "samples": count,
            "tuples_per_s_median": float(count / np.median(t)),
            "tuples_per_s_best": float(count / t.min()),
        }
    base = out["pil_1core"]
    for row in out.values():
        for stat in ("median", "best"):
            row[f"ratio_vs_pil_{stat}"] = row[f"tuples_per_s_{stat}"] / base[f"tuples_per_s_{stat}"]
    return out


def run(
    sizes=(32, 224),
    n: dict | None = None,
    devices: list[str] | None = None,
    repeats: int = 3,
) -> dict:
    """Measure AugMix throughput for each image size; returns a JSON-ready dict.

    n maps image size -> {path: number of images per timed pass}; the defaults keep each pass
    at a few seconds or less on one CPU core.
    """
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    unknown = set(devices) - {"cpu", "cuda"}
    if unknown:
        raise ValueError(f"unknown devices {sorted(unknown)}; use 'cpu' and/or 'cuda'")
    defaults = {
        32: {"pil_1core": 256, "batched_cpu": 1024, "batched_cuda": 8192},
        224: {"pil_1core": 16, "batched_cpu": 32, "batched_cuda": 512},
    }
    n = n or {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = {"config": {"severity": 3, "width": 3, "depth": -1, "alpha": 1.0,
                             "all_ops": False, "repeats": repeats, "torch_threads": 1,
                             "devices": devices}}  # fmt: skip
        if "cuda" in devices:
            result["config"]["cuda_device"] = torch.cuda.get_device_name()
        for size in sizes:
            counts = {**defaults.get(size, defaults[224]), **n.get(size, {})}
            result[str(size)] = _measure_size(size, counts, devices, repeats)
    finally:
        torch.set_num_threads(threads)
    return result


def format_table(result: dict) -> str:
    """Plain-text table of the figures returned by run()."""
    header = (
        f"{'size':>5}  {'path':<14} {'n':>6}  {'tuples/s (median)':>18}  {'best':>10}  "
        f"{'x PIL (median)':>14}"
    )
    lines = [header]
    for size, rows in result.items():
        if size == "config":
            continue
        for name, r in rows.items():
            lines.append(
                f"{size:>5}  {name:<14} {r['samples']:>6}  {r['tuples_per_s_median']:>18,.0f}  "
                f"{r['tuples_per_s_best']:>10,.0f}  {r['ratio_vs_pil_median']:>14.1f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run()))
