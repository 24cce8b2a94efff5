"""Benchmark: corruption throughput on one core and the projected full CIFAR-10-C build time.

`run()` times every benchmark corruption at every severity on `n` synthetic 32x32 images with
torch / BLAS / OpenMP limited to one thread, and projects the time of the full CIFAR-10-C build
(15 corruptions x 5 severities x 10,000 images). Anchor: the reference recipe takes about 950 s on
one core (spec performance.md §6.2); target <= 60 s.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from .build import corrupt_block, tune_allocator
from .functions import BENCHMARK_CORRUPTIONS, corrupt

__all__ = ["format_table", "run", "synthetic_images"]

REFERENCE_SECONDS = 951.0  # spec performance.md §6.2, pass 1


def synthetic_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth, colourful, natural-ish images (sums of random low-frequency waves plus mild noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(0.5, 4, (n, 3, 2, 1, 1))
    ph = rng.uniform(0, 2 * np.pi, (n, 3, 2, 1, 1))
    amp = rng.uniform(20, 70, (n, 3, 2, 1, 1))
    base = rng.uniform(60, 190, (n, 3, 1, 1))
    waves = (amp * np.sin(2 * np.pi * f * np.stack([xx, yy]) + ph)).sum(axis=2)
    img = base + waves + rng.normal(0, 6, (n, 3, size, size))
    return np.clip(img, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


@contextlib.contextmanager
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover
            threadpool_limits = None
        if threadpool_limits is not None:
            with threadpool_limits(limits=1):
                yield
        else:  # pragma: no cover
            yield
    finally:
        torch.set_num_threads(before)


def run(
    n: int = 512,
    device=None,
    names=BENCHMARK_CORRUPTIONS,
    severities=(1, 2, 3, 4, 5),
    seed: int = 0,
    full_size: int = 10_000,
    repeats: int = 3,
) -> dict:
    """Time each corruption on n images per severity (one thread), best of `repeats` passes
    (shared machines are noisy; the minimum estimates the cost). Returns a dict of figures.

    device: None (NumPy reference path), a torch device for the corruptions in
    DEVICE_CORRUPTIONS, or "auto" (CUDA when available)."""
    if device == "auto":  # the GPU path when present
        import torch

        device = "cuda" if torch.cuda.is_available() else None
    images = synthetic_images(n, seed=seed)
    allocator_tuned = tune_allocator()  # as the build does
    per = {}
    with _one_thread():
        for name in names:
            for s in severities:  # warm-up: imports, cached operators and textures
                corrupt(images[:8], name, s, np.random.default_rng(0), device=device)
            sev_rates = {}
            for s in severities:
                dt = float("inf")
                for _ in range(max(1, repeats)):
                    t = time.perf_counter()
                    corrupt_block(
                        images, name, s, seed, device=device
                    )  # the build's path
                    if device is not None and str(device).startswith("cuda"):
                        import torch

                        torch.cuda.synchronize()
                    dt = min(dt, time.perf_counter() - t)
                sev_rates[s] = n / dt
            seconds_full = sum(full_size / r for r in sev_rates.values())
            per[name] = {
                "images_per_second": len(severities) * full_size / seconds_full,
                "per_severity_images_per_second": sev_rates,
                "projected_seconds_full": seconds_full,
            }
    total = sum(v["projected_seconds_full"] for v in per.values())
    full_set = tuple(names) == tuple(BENCHMARK_CORRUPTIONS) and tuple(severities) == (
        1,
        2,
        3,
        4,
        5,
    )
    return {
        "n": n,
        "repeats": repeats,
        "threads": 1,
        "allocator_tuned": allocator_tuned,
        "device": str(device) if device is not None else "cpu",
        "corruptions": per,
        "projected_total_seconds": total,
        "images_total": len(names) * len(severities) * full_size,
        "reference_seconds": REFERENCE_SECONDS,
        # The reference figure covers the full set only (15 corruptions x 5 severities).
        "speedup_vs_reference": (
            REFERENCE_SECONDS / total if total > 0 else float("inf")
        )
        if full_set
        else None,
        "target_seconds": 60.0,
    }


def format_table(result: dict) -> str:
    lines = [f"{'corruption':20s} {'img/s':>10s} {'full (s)':>9s}"]
    for name, v in result["corruptions"].items():
        lines.append(
            f"{name:20s} {v['images_per_second']:10.0f} {v['projected_seconds_full']:9.2f}"
        )
    lines.append(f"{'total':20s} {'':10s} {result['projected_total_seconds']:9.2f}")
    line = (
        f"projected ({result['images_total']:,} images, 1 thread, {result['device']}): "
        f"{result['projected_total_seconds']:.1f} s"
    )
    if result["speedup_vs_reference"] is not None:
        line += (
            f"; full CIFAR-10-C reference ~{result['reference_seconds']:.0f} s "
            f"({result['speedup_vs_reference']:.1f}x); target {result['target_seconds']:.0f} s"
        )
    lines.append(line)
    return "\n".join(lines)
