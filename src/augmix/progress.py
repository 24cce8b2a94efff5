"""Progress display: a bar on a terminal, plain periodic lines in logs (DVC, Snakemake, SLURM)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", every: int = 50) -> Iterator[T]:
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=desc, leave=False, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        # A line every `every` items, but at most one per 2 s and at least one per 60 s.
        if (i % every == 0 and now - last >= 2.0) or now - last >= 60.0 or i == total:
            of = f"/{total}" if total else ""
            print(f"[{desc}] {i}{of} ({now - start:.1f} s)", file=sys.stderr, flush=True)
            last = now
