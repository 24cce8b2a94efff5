"""Real services for tests, bound to 127.0.0.1 on free ports, with their state in temporary folders.

* `postgres(...)`: a throw-away PostgreSQL cluster (initdb + pg_ctl), one database, trust auth on
  loopback only. initdb refuses to run as root, so as root the cluster is owned by the `postgres`
  system user (Debian's package creates it) and the binaries run through `runuser`.
* `mlflow_server(...)` / `mlflow_ui(...)`: `mlflow server` / `mlflow ui` of this interpreter's
  environment, waited on until `/health` answers.
* `chromium_binary()`: the headless browser for tests/test_ui.py (driven by support/browser.py).
* `fake_slurm_bin(...)`: stand-ins for sbatch and friends that record their calls, so the SLURM
  executor plugin can be driven end to end without a cluster.

Every process started here is stopped by the id it was given (never by name). No command line is
built as a shell string.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll `url` until it answers 200; fail early (with the log) if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s\n{_tail(log)}")


def _tail(log: Path | None, n: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-n:]


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group we created, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

APT_POSTGRES = "apt-get install -y postgresql"


def postgres_bindir() -> Path | None:
    """Folder holding initdb and pg_ctl: PATH first, then Debian's versioned folders."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def postgres_missing_reason() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    if postgres_bindir() is None:
        return f"PostgreSQL binaries (initdb, pg_ctl) not found; install them with `{APT_POSTGRES}`"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no `postgres` user exists to own the test cluster (initdb refuses root)"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing (needed to run initdb as the postgres user)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary); MLflow needs it for postgresql:// stores"
    return None


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    database: str
    datadir: Path

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def _as_owner(cmd: list[str]) -> list[str]:
    """Run a PostgreSQL binary as a non-root user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres(database: str = "mlflow", user: str = "augmix", timeout: float = 60) -> Iterator[Postgres]:
    """A fresh cluster in a temporary folder, listening on 127.0.0.1 only (no Unix socket elsewhere)."""
    reason = postgres_missing_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = postgres_bindir()
    # Not under pytest's tmp_path: that is mode 0700 and owned by root, so `postgres` could not enter.
    datadir = Path(tempfile.mkdtemp(prefix="augmix-pg-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(datadir, pw.pw_uid, pw.pw_gid)
    port = free_port()
    log = datadir / "server.log"
    try:
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(datadir / "db"), "-U", user,
                                  "--auth=trust", "-E", "UTF8", "--no-locale"]),
                       check=True, capture_output=True, text=True, timeout=timeout)
        # listen_addresses: loopback only; the Unix socket goes into our own folder. A throw-away
        # cluster needs no durability: without fsync each MLflow request is ~10x faster here.
        options = (f"-c listen_addresses={LOOPBACK} -p {port} -k {datadir} "
                   f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(datadir / "db"), "-l", str(log),
                                  "-o", options, "-w", "-t", str(int(timeout)), "start"]),
                       check=True, capture_output=True, text=True, timeout=timeout + 10)
        try:
            import psycopg2

            conn = psycopg2.connect(host=LOOPBACK, port=port, user=user, dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')  # our constant name, not user input
            conn.close()
            yield Postgres(LOOPBACK, port, user, database, datadir)
        finally:
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(datadir / "db"), "-m", "fast",
                                      "-w", "stop"]), capture_output=True, text=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{exc.cmd[0:4]} failed: {exc.stderr}\n{_tail(log)}") from None
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# MLflow server and UI
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path


def _mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@contextlib.contextmanager
def _serve(args: list[str], workdir: Path, timeout: float) -> Iterator[Server]:
    port = free_port()
    log = workdir / f"mlflow-{port}.log"
    cmd = [str(BIN / "mlflow"), *args, "--host", LOOPBACK, "--port", str(port), "--workers", "1"]
    with open(log, "wb") as out:
        # A new session: stop() signals the whole group (the server forks uvicorn workers).
        proc = subprocess.Popen(cmd, cwd=workdir, env=_mlflow_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/health", timeout, proc, log)
        yield Server(url, port, proc, log)
    finally:
        stop(proc)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, workdir: Path, timeout: float = 120) -> Iterator[Server]:
    """`mlflow server` with `backend_uri` and proxied artifacts stored under `artifacts`."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with _serve(["server", "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts.as_uri()],
                workdir, timeout) as server:
        yield server


@contextlib.contextmanager
def mlflow_ui(backend_uri: str, workdir: Path, timeout: float = 120) -> Iterator[Server]:
    """`mlflow ui` reading `backend_uri` (what `make ui` starts)."""
    with _serve(["ui", "--backend-store-uri", backend_uri], workdir, timeout) as server:
        yield server


def listening_addresses(pid: int) -> set[str]:
    """Local addresses of the TCP sockets the process tree of `pid` listens on (via psutil)."""
    root = psutil.Process(pid)
    addrs = set()
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for c in p.net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN:
                    addrs.add(c.laddr.ip)
    return addrs


# --------------------------------------------------------------------------------------------
# Headless Chromium
# --------------------------------------------------------------------------------------------

APT_CHROMIUM = "apt-get install -y chromium"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------------------------
# Fake SLURM tools
# --------------------------------------------------------------------------------------------

SLURM_TOOLS = ("sbatch", "sinfo", "sacct", "squeue", "sacctmgr", "sshare", "scontrol", "scancel", "srun")

_FAKE_TOOL = """#!{python}
# Fake SLURM tool written by tests/support/services.py: records its argv (one JSON list per line)
# and, for sbatch, the job script on stdin; sbatch then refuses the job so nothing runs.
import json, os, sys
name = os.path.basename(sys.argv[0])
record = {{"tool": name, "argv": sys.argv[1:]}}
if name == "sbatch" and not sys.stdin.isatty():
    record["stdin"] = sys.stdin.read()
with open({log!r}, "a") as f:
    f.write(json.dumps(record) + "\\n")
if name == "sbatch":
    sys.stderr.write("fake cluster: submission recorded, not run\\n")
    sys.exit(1)
"""


def fake_slurm_bin(folder: Path, log: Path) -> Path:
    """A folder of fake SLURM commands (put it first on PATH); every call is appended to `log`."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in SLURM_TOOLS:
        path = folder / tool
        path.write_text(_FAKE_TOOL.format(python=sys.executable, log=str(log)))
        path.chmod(0o755)
    return folder
