"""Benchmark: corruption throughput on one core and the projected full CIFAR-10-C build time.

`run()` times every benchmark corruption at every severity on `n` synthetic 32x32 images with
torch / BLAS / OpenMP limited to one thread, and projects the time of the full CIFAR-10-C build
(15 corruptions x 5 severities x 10,000 images). Anchor: the reference recipe takes about 950 s on
one core (the reference scripts timed on one core of our machine; docs/corruptions.md,
"Generation time"); target <= 60 s.

`run_end_to_end()` (also `run(end_to_end=True)`) times the real build instead: `build_c_set` of
`n` synthetic images into a temporary folder (.npy files, hashes, contact sheet, manifest; the
writing and hashing on the build's background writer thread), after a small warm-up build that
pays the one-off costs (imports, frost textures, cached operators), and projects to 10,000 images
as warm-up + timed * 10,000 / n. On CUDA the build uses device batches
(`build.batch_size`: 8192 images at 32x32), so by default it times the full 10,000 images:
a smaller n would time one partial batch and scale it up, which misstates a GPU's per-batch costs.

device (both modes): as `build.resolve_device` ("auto", "cpu" = the NumPy path, "cuda[:N]", or a
torch.device such as torch.device("cpu") for the torch path on the CPU).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np

from augmix.memory import keep_freed_memory

from .build import CHUNK, batch_size, build_c_set, corrupt_block, resolve_device
from .functions import BENCHMARK_CORRUPTIONS
from .kernels import torch_device_type

__all__ = ["format_table", "run", "run_end_to_end", "synthetic_images"]

REFERENCE_SECONDS = 951.0  # the reference's one-core CIFAR-10-C time (docs/corruptions.md)


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
    n: int | None = None,
    device="auto",
    names=BENCHMARK_CORRUPTIONS,
    severities=(1, 2, 3, 4, 5),
    seed: int = 0,
    full_size: int = 10_000,
    repeats: int = 3,
    end_to_end: bool = False,
) -> dict:
    """Time each corruption on n images per severity (one thread; default 512), best of
    `repeats` passes (shared machines are noisy; the minimum estimates the cost). Returns a dict
    of figures.

    device: as `build.resolve_device` ("auto": CUDA when available, else the NumPy path).
    end_to_end: time a real `build_c_set` of n images instead (see `run_end_to_end`)."""
    if end_to_end:
        return run_end_to_end(
            n=n,
            device=device,
            names=names,
            severities=severities,
            seed=seed,
            full_size=full_size,
        )
    device = resolve_device(device)
    n = 512 if n is None else n
    images = synthetic_images(n, seed=seed)
    allocator_tuned = keep_freed_memory()  # as the build does
    per = {}
    with _one_thread():
        for name in names:
            for s in severities:  # warm-up: imports, cached operators and textures
                corrupt_block(images[:8], name, s, seed, device=device)
            sev_rates = {}
            for s in severities:
                dt = float("inf")
                for _ in range(max(1, repeats)):
                    t = time.perf_counter()
                    corrupt_block(
                        images, name, s, seed, device=device
                    )  # the build's path
                    _sync(device)
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
        "backend": _backend(device),
        # images per computed batch (n < batch: one partial batch)
        "batch": batch_size(device, 32, 32),
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
        "target_seconds": _target_seconds(device),
    }


def _backend(device) -> str:
    """'numpy' for the NumPy path, else 'torch-<device type>' (the JSON's "device" says cpu for
    both the NumPy path and CPU torch)."""
    return "numpy" if device is None else f"torch-{torch_device_type(device)}"


def _target_seconds(device) -> float:
    """Issue #4's targets for the full CIFAR-10-C: 60 s on one core, 5 s on one GPU."""
    return 5.0 if device is not None and torch_device_type(device) == "cuda" else 60.0


def _sync(device) -> None:
    if device is not None and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_end_to_end(
    n: int | None = None,
    device="auto",
    names=BENCHMARK_CORRUPTIONS,
    severities=(1, 2, 3, 4, 5),
    seed: int = 0,
    full_size: int = 10_000,
    warmup: int = 16,
    out_dir=None,
) -> dict:
    """Time the real `corrupt` stage path: `build_c_set(..., table="cifar")` of n synthetic
    images, writing the .npy files, hashes, contact sheet and manifest (one compute thread; the
    build writes and hashes on its background writer thread).

    n: default 512 where batches hold CHUNK images (NumPy, CPU torch: the cost per image does not
    depend on n), `full_size` on CUDA (device batches hold 8192 images at 32x32, so only a
    full-size build times the batches a real build runs).

    A warm-up build of `warmup` images runs first, in a fresh folder: it pays the one-off costs
    (module imports, frost textures, cached tables and operators) and is reported as
    `warmup_seconds`. Projection to `full_size` images: warmup + timed * full_size / n, which
    slightly over-counts (the warm-up also corrupts its few images).
    out_dir: where to build (default: a temporary folder, removed afterwards)."""
    device = resolve_device(device)
    if n is None:  # a build whose batches are bigger than CHUNK is timed whole, not projected
        n = 512 if batch_size(device, 32, 32) == CHUNK else full_size
    images = synthetic_images(n, seed=seed)
    labels = np.arange(n) % 10
    allocator_tuned = keep_freed_memory()
    names = tuple(names)
    with contextlib.ExitStack() as stack:
        root = (
            Path(out_dir)
            if out_dir is not None
            else Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="augmix-bench-"))
            )
        )
        stack.enter_context(_one_thread())
        kw = {
            "names": names,
            "severities": severities,
            "seed": seed,
            "table": "cifar",
            "device": device,
        }
        t = time.perf_counter()
        build_c_set(
            images[: max(1, min(warmup, n))],
            labels[: max(1, min(warmup, n))],
            root / "warmup",
            **kw,
        )
        _sync(device)
        warm = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        summary = build_c_set(images, labels, root / "build", **kw)
        _sync(device)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    projected = warm + wall * full_size / n
    full_set = names == tuple(BENCHMARK_CORRUPTIONS) and tuple(severities) == (
        1,
        2,
        3,
        4,
        5,
    )
    return {
        "mode": "end_to_end",
        "n": n,
        "full_size": full_size,
        "threads": 1,
        "allocator_tuned": allocator_tuned,
        "device": str(device) if device is not None else "cpu",
        "backend": _backend(device),
        "batch": summary["batch"],  # images per computed batch in the timed build
        "warmup_images": max(1, min(warmup, n)),
        "warmup_seconds": warm,
        "seconds": wall,
        "cpu_seconds": cpu,
        "seconds_per_corruption": summary["seconds_per_corruption"],
        "projected_total_seconds": projected,
        "images_total": len(names) * len(severities) * full_size,
        "reference_seconds": REFERENCE_SECONDS,
        "speedup_vs_reference": (REFERENCE_SECONDS / projected) if full_set else None,
        "target_seconds": _target_seconds(device),
    }


def format_table(result: dict) -> str:
    if result.get("mode") == "end_to_end":
        return _format_end_to_end(result)
    lines = [f"{'corruption':20s} {'img/s':>10s} {'full (s)':>9s}"]
    for name, v in result["corruptions"].items():
        lines.append(
            f"{name:20s} {v['images_per_second']:10.0f} {v['projected_seconds_full']:9.2f}"
        )
    lines.append(f"{'total':20s} {'':10s} {result['projected_total_seconds']:9.2f}")
    lines.append(_projection_line(result))
    return "\n".join(lines)


def _projection_line(result: dict) -> str:
    """The projected full CIFAR-10-C time beside the reference and the target."""
    line = (
        f"projected ({result['images_total']:,} images, 1 thread, {result['backend']}, "
        f"batches of {result['batch']}): {result['projected_total_seconds']:.1f} s"
    )
    if result["speedup_vs_reference"] is not None:
        line += (
            f"; full CIFAR-10-C reference ~{result['reference_seconds']:.0f} s "
            f"({result['speedup_vs_reference']:.1f}x); target {result['target_seconds']:.0f} s"
        )
    return line


def _format_end_to_end(result: dict) -> str:
    per_image = result["full_size"] / result["n"]
    lines = [f"{'corruption':20s} {'build (s)':>9s} {'full (s)':>9s}"]
    for name, sec in result["seconds_per_corruption"].items():
        lines.append(f"{name:20s} {sec:9.2f} {sec * per_image:9.2f}")
    lines.append(
        f"end to end: {result['n']:,} images x {len(result['seconds_per_corruption'])} corruptions "
        f"in {result['seconds']:.2f} s wall ({result['cpu_seconds']:.2f} s CPU); "
        f"warm-up build {result['warmup_seconds']:.2f} s"
    )
    lines.append(_projection_line(result))
    return "\n".join(lines)
