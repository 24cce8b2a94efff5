"""Benchmark: images per second of the successor augmentations beside AugMix (batched paths).

Protocol (as bench_augment.py): inputs are flipped and cropped uint8 images (smooth synthetic
pictures); one warm-up call per method, then `repeats` timed passes, interleaving the methods so
that load from other processes hits them alike; median and best pass reported. CPU runs use one
thread (torch.set_num_threads(1)); CUDA runs are timed with synchronisation. "images/s" counts
input images: a JSD method makes two augmented views (plus the clean one) per image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from augmix.ablation import autoaugment_star_batch, random_autoaugment_star_views
from augmix.augment import make_views
from augmix.bench_augment import _images, _timer
from augmix.rng import SampleKeys
from augmix.successors.fractals import generate_fractals
from augmix.successors.pixmix import pixmix_batch
from augmix.successors.prime import prime_views
from augmix.successors.randaugment import randaugment_batch, trivialaugment_batch

Call = Callable[[torch.Tensor, SampleKeys, dict], torch.Tensor]

# name -> (call, views per image); every call uses the method's defaults.
METHODS: dict[str, tuple[Call, int]] = {
    "augmix_jsd": (lambda x, k, ctx: make_views(x, k, jsd=True), 2),
    "augmix_nojsd": (lambda x, k, ctx: make_views(x, k, jsd=False), 1),
    "randaugment": (lambda x, k, ctx: randaugment_batch(x, k), 1),
    "trivialaugment_wide": (lambda x, k, ctx: trivialaugment_batch(x, k), 1),
    "autoaugment_star": (lambda x, k, ctx: autoaugment_star_batch(x, k), 1),
    "random_autoaugment_star_jsd": (lambda x, k, ctx: random_autoaugment_star_views(x, k, jsd=True), 2),
    "prime_jsd": (lambda x, k, ctx: prime_views(x, k, jsd=True), 2),
    "prime_jsd_per_sample": (lambda x, k, ctx: prime_views(x, k, jsd=True, shared_draws=False), 2),
    "pixmix": (lambda x, k, ctx: pixmix_batch(x, k, ctx["mixing_set"]), 1),
}
DEFAULT_N = {"cpu": 512, "cuda": 8192}


def _measure(size: int, device: str, n: int, repeats: int, methods: list[str]) -> dict:
    x = _images(n, size).to(device)
    keys = SampleKeys.arange(0, 0, n, device=device)
    pictures = generate_fractals(64, size + 4 * (size == 32), seed=0)  # 36 px at CIFAR size
    ctx = {"mixing_set": torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous().to(device)}
    runs = {}
    for name in methods:
        fn = METHODS[name][0]
        runs[name] = _timer(lambda fn=fn: fn(x, keys, ctx), device)
        runs[name]()  # warm-up
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    out = {}
    for name in methods:
        t = np.array(times[name])
        out[name] = {"images": n, "views_per_image": METHODS[name][1],
                     "images_per_s_median": float(n / np.median(t)), "images_per_s_best": float(n / t.min())}
    base = out.get("augmix_jsd")
    for row in out.values():
        if base:
            row["ratio_vs_augmix_jsd"] = row["images_per_s_median"] / base["images_per_s_median"]
    return out


def run(devices=("cpu",), sizes=(32,), repeats: int = 3, n: dict | None = None,
        methods: list[str] | None = None) -> dict:  # fmt: skip
    """Measure every method per device and image size; returns a JSON-ready dict.
    n: {device: images per timed pass} (defaults DEFAULT_N)."""
    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS] + [d for d in devices if d not in DEFAULT_N]
    if unknown:
        raise ValueError(f"unknown methods or devices {unknown}; methods {list(METHODS)}, devices {list(DEFAULT_N)}")
    counts = {**DEFAULT_N, **(n or {})}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = {"config": {"repeats": repeats, "torch_threads": 1, "devices": list(devices), "methods": methods}}
        if "cuda" in devices:
            result["config"]["cuda_device"] = torch.cuda.get_device_name()
        for device in devices:
            for size in sizes:
                result[f"{device}/{size}"] = _measure(size, device, counts[device], repeats, methods)
    finally:
        torch.set_num_threads(threads)
    return result


def format_table(result: dict) -> str:
    """Plain-text table of the figures returned by run()."""
    lines = [f"{'device/size':<12} {'method':<28} {'n':>6} {'views':>5} {'images/s (median)':>18} {'best':>10} "
             f"{'x AugMix JSD':>12}"]  # fmt: skip
    for where, rows in result.items():
        if where == "config":
            continue
        for name, r in rows.items():
            ratio = f"{r['ratio_vs_augmix_jsd']:>12.2f}" if "ratio_vs_augmix_jsd" in r else f"{'':>12}"
            lines.append(f"{where:<12} {name:<28} {r['images']:>6} {r['views_per_image']:>5} "
                         f"{r['images_per_s_median']:>18,.0f} {r['images_per_s_best']:>10,.0f} {ratio}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run()))
