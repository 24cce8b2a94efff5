"""DVC's views of a work folder, made readable and offline: `augmix exps`, `augmix plan`, and the page
template that lets `dvc plots show` / `dvc plots diff` draw without a network.

* `exps`: `dvc exp show --json` reduced to what a researcher compares: each experiment's name, the
  params that differ from its baseline commit, and each evaluated cell's headline numbers
  (clean_error, corruption_error from results/<cell>/metrics.json). One row per experiment and cell,
  so the table stays narrow however large the grid is (plain `dvc exp show` puts one column per
  metric per cell and the changed params at the far right).
* `plan`: the jobs `dvc repro` would run, in order, and why, from DVC's own status and DAG. Unlike
  `dvc repro --dry` it works where inputs are still missing (a fresh clone: the dry run stops at the
  first stage whose dependency another stage has not made yet).
* `write_plots_template`: DVC's HTML page loads Vega from a CDN (dvc_render/vega.py, `SCRIPTS`), so
  offline it is blank. Snakemake, a dependency of this project, ships vega, vega-lite and vega-embed
  as package data (snakemake/assets/__init__.py, `Assets.spec`, with their SHA-256); the template
  inlines those files, checked against those digests. A work folder points DVC's
  `plots.html_template` at it (augmix.pipeline).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import io as _io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augmix import config, io
from augmix.errors import ConfigError, PipelineError

PARAMS_FILE = "params.yaml"
HEADLINE = ("clean_error", "corruption_error")  # per cell, in this order
METRICS_NAME = "metrics.json"
RESULTS = "results/"
# The check stage's stamp is the same bytes for every valid params file (augmix.stages.check), so its
# re-run never makes a later job run: DVC compares the dependency's hash, not the run.
STABLE_OUTPUTS = frozenset({".augmix/params-ok"})


def dvc_executable() -> str:
    """The dvc installed beside this Python (the project's .venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.exists() else shutil.which("dvc")
    if not found:
        raise PipelineError("dvc not found: run `make setup` (it installs the pinned tools in .venv)")
    return found


def _dvc_json(args: list[str], cwd: Path) -> Any:
    result = subprocess.run([dvc_executable(), *args, "--json"], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise PipelineError(f"dvc {' '.join(args)} failed in {cwd}: {last}")
    return json.loads(result.stdout or "null")


# --------------------------------------------------------------------------------------------
# augmix exps
# --------------------------------------------------------------------------------------------


@dataclass
class Experiment:
    """One row group of the table: a baseline commit, an experiment on it, or pending workspace changes."""

    name: str
    rev: str  # short commit, or "workspace"
    baseline: str  # the baseline's name
    state: str  # baseline | success | queued | running | failed | invalid
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # changed key -> (baseline, this)
    cells: dict[str, dict[str, float]] = field(default_factory=dict)  # cell -> headline numbers
    note: str = ""  # why it failed or is invalid (one line)
    values: dict[str, Any] = field(default_factory=dict)  # every params key (dotted) -> its value here


def _file_data(files: Mapping[str, Any] | None, name: str) -> Any:
    entry = (files or {}).get(name) or {}
    return entry.get("data")


def headline(metrics: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """cell (results/<cell>/metrics.json) -> its headline numbers, from `exp show`'s metrics."""
    out: dict[str, dict[str, float]] = {}
    for path, entry in sorted((metrics or {}).items()):
        if not (path.startswith(RESULTS) and path.endswith("/" + METRICS_NAME)):
            continue
        data = (entry or {}).get("data") or {}
        numbers = {k: float(data[k]) for k in HEADLINE if isinstance(data.get(k), (int, float))
                   and not isinstance(data.get(k), bool)}
        if numbers:
            out[path[len(RESULTS):-len(METRICS_NAME) - 1]] = numbers
    return out


def changed_params(base: Mapping[str, Any] | None, this: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose value differs (lists compared whole), with (baseline value, this value);
    a key one side lacks has None there."""
    a, b = config.flatten(base or {}), config.flatten(this or {})
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=_key_order(a, b))
            if a.get(k) != b.get(k)}


def _key_order(a: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
    order = {k: i for i, k in enumerate([*a, *(k for k in b if k not in a)])}
    return lambda k: order[k]


def _invalid(params: Mapping[str, Any] | None) -> str:
    """The first line of config's refusal of these params, or "" when they are valid."""
    if params is None:
        return ""
    try:
        config.parse(params, where=PARAMS_FILE)
    except ConfigError as exc:
        return " ".join(str(exc).split())
    return ""


def _state(rng: Mapping[str, Any], rev: Mapping[str, Any]) -> str:
    """DVC's executor state (queued, running, failed, success); a finished experiment has none."""
    return (rng.get("executor") or {}).get("state") or ("failed" if rev.get("error") else "success")


def experiments(show: list[Mapping[str, Any]]) -> list[Experiment]:
    """`dvc exp show --json` -> baselines and their experiments, in DVC's order. The workspace is
    listed only when it differs from its baseline and from every experiment (pending changes)."""
    out: list[Experiment] = []
    workspace = next((e for e in show if e.get("rev") == "workspace"), None)
    commits = [e for e in show if e.get("rev") != "workspace"]
    for commit in commits:
        data = commit.get("data") or {}
        base_params = _file_data(data.get("params"), PARAMS_FILE)
        name = commit.get("name") or commit["rev"][:7]
        out.append(Experiment(name, commit["rev"][:7], name, "baseline", {}, headline(data.get("metrics")),
                              _invalid(base_params), config.flatten(base_params or {})))
        for rng in commit.get("experiments") or []:
            for rev in rng.get("revs") or []:
                rdata = rev.get("data") or {}
                params = _file_data(rdata.get("params"), PARAMS_FILE)
                state = _state(rng, rev)
                note = (rev.get("error") or {}).get("msg", "") if state == "failed" else _invalid(params)
                if state == "success" and note:
                    state = "invalid"
                out.append(Experiment(rng.get("name") or rev.get("name") or rev["rev"][:7], rev["rev"][:7], name,
                                      state, changed_params(base_params, params), headline(rdata.get("metrics")),
                                      note, config.flatten(params or {})))
    if workspace and commits:
        wdata = workspace.get("data") or {}
        params = _file_data(wdata.get("params"), PARAMS_FILE)
        values, cells = config.flatten(params or {}), headline(wdata.get("metrics"))
        if all((e.values, e.cells) != (values, cells) for e in out):
            base = commits[0]
            base_params = _file_data((base.get("data") or {}).get("params"), PARAMS_FILE)
            note = _invalid(params)
            out.insert(0, Experiment("workspace", "workspace", base.get("name") or base["rev"][:7],
                                     "invalid" if note else "pending", changed_params(base_params, params), cells,
                                     note, values))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _number(value: float | None, base: float | None) -> str:
    if value is None:
        return "-"
    if base is None or base == value:
        return f"{value:.4f}"
    return f"{value:.4f} ({value - base:+.4f})"


def _baselines(exps: list[Experiment]) -> dict[str, Experiment]:
    return {e.name: e for e in exps if e.state == "baseline"}


def table(exps: list[Experiment], *, all_cells: bool = False) -> str:
    """A plain-text table: experiment, its changed params (one per line, key=value), and per cell the
    headline numbers with the change from the baseline in brackets. An experiment lists only the
    cells whose numbers changed unless `all_cells`; a baseline lists every cell."""
    bases = _baselines(exps)
    head = ["experiment", "state", "changed params", "cell", *HEADLINE]
    rows: list[list[str]] = []
    notes: list[str] = []
    for exp in exps:
        base = bases.get(exp.baseline)
        base_cells = base.cells if base and exp is not base else {}
        cells = [c for c in exp.cells if all_cells or exp.state == "baseline" or exp.cells[c] != base_cells.get(c)]
        hidden = len(exp.cells) - len(cells)
        params = [f"{k}={_fmt(new)}" for k, (_, new) in exp.params.items()]
        cell_texts = [[c, *(_number(exp.cells[c].get(k), base_cells.get(c, {}).get(k)) for k in HEADLINE)]
                      for c in cells]
        if hidden:
            cell_texts.append([f"({hidden} cell{'s' if hidden > 1 else ''} unchanged)", "", ""])
        if not cell_texts and not exp.cells:
            cell_texts.append(["(no metrics)", "", ""])
        label = exp.name if exp.rev in (exp.name, "workspace") else f"{exp.name} ({exp.rev})"
        for i in range(max(len(params), len(cell_texts), 1)):
            rows.append([label if i == 0 else "", exp.state if i == 0 else "", params[i] if i < len(params) else "",
                         *(cell_texts[i] if i < len(cell_texts) else ["", "", ""])])
        if exp.note:
            notes.append(f"{exp.name}: {exp.note}")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def to_csv(exps: list[Experiment]) -> str:
    """One row per experiment and cell (every cell), one column per param any experiment changed."""
    keys: list[str] = []
    for exp in exps:
        keys += [k for k in exp.params if k not in keys]
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["experiment", "rev", "baseline", "state", *keys, "cell", *HEADLINE])
    for exp in exps:
        values = [_fmt(exp.values.get(k)) for k in keys]
        for cell in exp.cells or {"": {}}:
            numbers = exp.cells.get(cell, {})
            writer.writerow([exp.name, exp.rev, exp.baseline, exp.state, *values, cell,
                             *(repr(numbers[k]) if k in numbers else "" for k in HEADLINE)])
    return buf.getvalue()


def exps(cwd: Path = Path("."), *, csv_out: bool = False, all_cells: bool = False,
         all_commits: bool = False) -> str:
    """`augmix exps`: the experiments of the work folder `cwd` as a narrow table (or CSV)."""
    show = _dvc_json(["exp", "show", *(["--all-commits"] if all_commits else [])], Path(cwd).resolve())
    found = experiments(show or [])
    return to_csv(found) if csv_out else table(found, all_cells=all_cells)


# --------------------------------------------------------------------------------------------
# augmix plan
# --------------------------------------------------------------------------------------------


@dataclass
class Planned:
    stage: str  # DVC's name for the job, e.g. train@digits-wrn16_1-augmix-1
    cmd: str
    reasons: list[str]  # why it runs; empty when it runs only if an upstream job changes its outputs
    after: list[str]  # upstream jobs in the plan whose new outputs it reads


def _names(items: Iterable[str], limit: int = 3) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def param_changes(key: str, old: Any, new: Any) -> list[str]:
    """The leaf keys under the declared params key `key` whose value differs between `old` and `new`."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return [key] if old != new else []
    return [f"{key}.{k}" for k in changed_params(old, new)]


def reasons(status: list[Any], *, locked: Mapping[str, Any] | None = None,
            current: Mapping[str, Any] | None = None) -> list[str]:
    """One stage's `dvc status` entries as short phrases: which params (leaf keys, from the values the
    stage recorded in dvc.lock, `locked`, and the params file now, `current`), inputs, code, outputs."""
    found: dict[str, list[str]] = {"params": [], "inputs": [], "code": [], "outputs": []}
    other: list[str] = []
    for entry in status:
        if isinstance(entry, str):  # "changed command", "always changed"
            other.append(entry.replace("changed ", "") + " changed" if entry.startswith("changed ") else entry)
            continue
        for kind, changes in entry.items():
            for path, change in (changes or {}).items():
                if kind != "changed deps":
                    found["outputs"].append(f"{path} ({change})")
                elif path == PARAMS_FILE and isinstance(change, Mapping):
                    found["params"] += [leaf for key in change for leaf in _leaves(key, locked, current)]
                elif path == PARAMS_FILE:
                    found["params"].append(f"{path} ({change})")
                else:
                    found["code" if path.startswith("src/") else "inputs"].append(f"{path} ({change})")
    return [f"{kind} {_names(items)}" for kind, items in found.items() if items] + other


_MISSING = object()


def _value(tree: Mapping[str, Any] | None, key: str, *, flat: bool) -> Any:
    if tree is None:
        return _MISSING
    if flat:  # dvc.lock records each declared key whole, under its dotted name
        return tree.get(key, _MISSING)
    try:
        return config.get(tree, key)
    except KeyError:
        return _MISSING


def _leaves(key: str, locked: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> list[str]:
    old, new = _value(locked, key, flat=True), _value(current, key, flat=False)
    if old is _MISSING or new is _MISSING:
        return [key]
    return param_changes(key, old, new) or [key]


def plan(cwd: Path = Path(".")) -> list[Planned]:
    """The jobs `dvc repro` would run in `cwd`, in DVC's order: those whose recorded state (dvc.lock)
    differs from the workspace, with why, then those that read an output of a planned job (they run
    if that output comes out different). A job with no dvc.lock entry has never run. A params file
    that does not validate is refused first, as the pipeline's check stage would refuse it."""
    import networkx as nx
    from dvc.repo import Repo  # only needed here, and slow to import

    cwd = Path(cwd).resolve()
    if not (cwd / "dvc.yaml").is_file():
        raise PipelineError(f"{cwd}: no dvc.yaml here; run augmix plan in the repository or a work folder")
    current = config.read_yaml(cwd / PARAMS_FILE)
    config.parse(current, where=str(cwd / PARAMS_FILE))
    lock_path = cwd / "dvc.lock"
    lock = ((config.read_yaml(lock_path) or {}).get("stages") or {}) if lock_path.exists() else {}
    with Repo(str(cwd)) as repo:
        index = {s.addressing: i for i, s in enumerate(repo.index.stages)}
        graph = repo.index.graph  # edge: a stage -> a stage whose output it reads
        status = repo.status()
        out: list[Planned] = []
        planned: set[str] = set()
        for stage in nx.lexicographical_topological_sort(graph.reverse(copy=True), key=lambda s: index[s.addressing]):
            name = stage.addressing
            if name in lock:
                why = reasons(status.get(name, []), locked=(lock[name].get("params") or {}).get(PARAMS_FILE),
                              current=current)
            else:
                why = ["never run"]
            after = sorted((up.addressing for up in graph.successors(stage)
                            if up.addressing in planned and _reads_changing_output(stage, up)), key=index.__getitem__)
            if why or after:
                planned.add(name)
                cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
                out.append(Planned(name, cmd, why, after))
        return out


def _reads_changing_output(stage: Any, upstream: Any) -> bool:
    """Whether `stage` reads an output of `upstream` other than a stamp that never changes."""
    outs = [o for o in upstream.outs if o.def_path not in STABLE_OUTPUTS]
    for dep in stage.deps:
        for out in outs:
            if dep.fs_path == out.fs_path or dep.fs_path.startswith(out.fs_path.rstrip("/") + "/") \
                    or out.fs_path.startswith(dep.fs_path.rstrip("/") + "/"):
                return True
    return False


def format_plan(jobs: list[Planned], *, commands: bool = False) -> str:
    if not jobs:
        return "dvc repro would run nothing: every job is up to date\n"
    direct = sum(1 for j in jobs if j.reasons)
    lines = [f"dvc repro would run {direct} job{'s' if direct != 1 else ''}"
             + (f", then up to {len(jobs) - direct} more whose inputs they remake" if len(jobs) > direct else "")
             + ":"]
    width = max(len(j.stage) for j in jobs)
    for job in jobs:
        why = "; ".join(job.reasons) or f"if {_names(job.after)} give{'s' if len(job.after) == 1 else ''} it new inputs"
        lines.append(f"  {job.stage.ljust(width)}  {why}")
        if commands:
            lines.append(f"  {' ' * width}  $ {job.cmd}")
    return "\n".join(lines) + "\n"


def plan_json(jobs: list[Planned]) -> str:
    return json.dumps([{"stage": j.stage, "cmd": j.cmd, "reasons": j.reasons, "after": j.after} for j in jobs],
                      indent=2) + "\n"


# --------------------------------------------------------------------------------------------
# Offline pages for dvc plots show / diff
# --------------------------------------------------------------------------------------------

VEGA_ASSETS = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")

# DVC fills {plot_divs} and {refresh_tag}; the template has no {scripts}, so DVC's CDN tags are left out.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC plots</title>
    <!-- vega, vega-lite and vega-embed inlined from snakemake's package data (written by augmix):
         the page draws without a network -->
%s
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def _vega_sources() -> list[tuple[str, str]]:
    """(asset path, JavaScript) for vega, vega-lite, vega-embed, each checked against the SHA-256
    Snakemake's asset table records for it."""
    try:
        from snakemake.assets import Assets
    except ImportError as exc:  # pragma: no cover - snakemake is a dependency of the project
        raise PipelineError("snakemake is not installed: run `make setup` (its package data holds vega)") from exc
    base = importlib.resources.files("snakemake.assets") / "data"
    out = []
    for name in VEGA_ASSETS:
        path = base / name
        if not path.is_file():
            raise PipelineError(f"{path}: missing from the snakemake package; reinstall it (`make setup`)")
        data = path.read_bytes()
        want = Assets.spec[name].sha256
        if want and hashlib.sha256(data).hexdigest() != want:
            raise PipelineError(f"{path}: SHA-256 differs from snakemake's asset table; reinstall snakemake")
        text = data.decode("utf-8")
        if "</script" in text.lower() or any(f"{{{p}}}" in text for p in ("plot_divs", "refresh_tag", "scripts")):
            raise PipelineError(f"{path}: cannot be inlined in an HTML page as it is")
        out.append((f"{name.split('/')[0]} {Assets.spec[name].version}", text))
    return out


def plots_page() -> str:
    scripts = "\n".join(f"    <script>/* {label} */\n{text}\n    </script>" for label, text in _vega_sources())
    return PAGE.replace("%s", scripts, 1)


def write_plots_template(path: Path) -> Path:
    """Write the offline page template (about 2.2 MB) to `path` unless it is already this text."""
    path = Path(path)
    text = plots_page()
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        io.write_text(path, text)
    return path
