"""`augmix report`: the paper's tables, verdicts and plots from every result file into report/;
`augmix report --compare A B`: two result folders cell by cell."""

from __future__ import annotations

from pathlib import Path

from augmix import io, layout
from augmix import report as rep
from augmix.config import Params
from augmix.jobs import Job
from augmix.stages.common import job_run


def run(params: Params) -> dict[str, Path]:
    with job_run(params, Job("report")) as (p, tracked):
        files = rep.build_report(layout.RESULTS, layout.REPORT, calib_mode=p.eval.calib_mode,
                                 bin_size=p.eval.calib_bin_size)
        tracked.log_artifacts(layout.REPORT)
    print(f"[report] tables and plots in {layout.REPORT.resolve()} (start with report.md)", flush=True)
    return files


def compare(a: Path, b: Path, out: Path | None = None) -> str:
    text = rep.compare(Path(a), Path(b))
    if out is not None:
        io.write_text(out, text)
    return text
