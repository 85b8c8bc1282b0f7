"""Real servers for the cluster tests: a throw-away PostgreSQL cluster and a two-node Ray cluster
on this machine. Nothing is mocked; each fixture stops exactly the processes it started.

PostgreSQL: the Debian ``postgresql`` binaries (``/usr/lib/postgresql/*/bin``) are used when
present; else, as root with ``CI=true`` or ``REGLAB_INSTALL_SERVERS=1``, they are installed with
apt-get (without Debian's default cluster); else the tests are skipped with the reason. The
server runs as the ``postgres`` system user when the tests run as root (postgres refuses root).

Ray: ``ray start --block`` for a head node and a worker node (1 CPU each), in their own process
groups and their own ``--temp-dir``; teardown kills those process groups (``ray stop`` would stop
every Ray process of the user). A file lock keeps two pytest-xdist processes from running two
clusters at once on a small machine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from clusterlib import VENV_BIN, free_port, reglab_env, write_study

from cilib import unavailable

# -- PostgreSQL -----------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    return None


def _may_install() -> bool:
    return os.geteuid() == 0 and (os.environ.get("CI") == "true" or os.environ.get("REGLAB_INSTALL_SERVERS") == "1")


def _install_postgres() -> None:
    """apt-get install postgresql, without the 'main' cluster Debian would create and start."""
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n", encoding="utf-8")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "postgresql",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )


def _server_user() -> str | None:
    """The system user postgres runs as when we are root (created if missing); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
            capture_output=True,
        )
    return "postgres"


@dataclass
class Postgres:
    host: str
    port: int
    database: str
    user: str
    password: str
    bindir: Path
    socket_dir: Path
    run_as: str | None
    made: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        cmd = [
            str(self.bindir / "psql"),
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-c",
            sql,
        ]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout

    def new_database(self, name: str) -> str:
        """A fresh database owned by the test user; returns its URL (with the password)."""
        self.psql(f"CREATE DATABASE {name} OWNER {self.user}")
        return self.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on 127.0.0.1:<free port>, a user with a password and a database."""
    bindir = _pg_bindir()
    if bindir is None:
        if not _may_install():
            unavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; install the Debian package "
                "'postgresql', or run as root with CI=true or REGLAB_INSTALL_SERVERS=1 to install it"
            )
        _install_postgres()
        bindir = _pg_bindir()
        if bindir is None:
            pytest.fail("apt-get installed postgresql but initdb/pg_ctl were not found")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        unavailable("psycopg2 is not installed: pip install 'reglab[cluster]'")
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="reglab-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if run_as:
        shutil.chown(root, run_as)
        shutil.chown(sock, run_as)

    def as_server(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", run_as, "--", *cmd] if run_as else cmd
        return subprocess.run(full, check=True, capture_output=True, text=True, timeout=120, **kw)

    port = free_port()
    pg = Postgres("127.0.0.1", port, "reglab", "reglab", "pw" + secrets.token_hex(10), bindir, sock, run_as)
    started = False
    try:
        as_server(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ]
        )
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        as_server(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        started = True
        pg.psql(f"CREATE USER {pg.user} WITH PASSWORD '{pg.password}'")
        pg.psql(f"CREATE DATABASE {pg.database} OWNER {pg.user}")
        yield pg
    finally:
        if started:
            with contextlib.suppress(Exception):
                as_server([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """A fresh database per test (so studies never meet), as a URL with the password."""
    name = "t_" + secrets.token_hex(6)
    return postgres.new_database(name)


# -- Ray --------------------------------------------------------------------------------------------


@dataclass
class RayCluster:
    address: str
    temp_dir: Path
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    logs: Path

    def worker_task_pids(self) -> list[int]:
        """PIDs of the worker node's processes running a reglab task right now."""
        return [pid for pid in _descendants(self.worker.pid) if "_run_on_ray" in _cmdline(pid)]

    def kill_worker_node(self) -> None:
        """SIGKILL the worker node: its raylet and agents, and its task workers (which Ray puts
        into process groups of their own)."""
        _kill_tree(self.worker, grace=0)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from /proc: Ray starts workers in new process groups)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(proc: subprocess.Popen[bytes], grace: float = 5) -> None:
    """Stop a process started with start_new_session=True: its process group and every
    descendant (also those in process groups of their own)."""
    tree = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        if grace:
            os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:
        if "ray" in _cmdline(pid):  # still one of ours (not a recycled PID)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _wait_nodes(address: str, n: int, timeout: float = 120) -> None:
    code = (
        "import sys, time, ray\n"
        f"end = time.time() + {timeout}\n"
        "while True:\n"
        "    try:\n"
        f"        ray.init(address={address!r}, log_to_driver=False, logging_level='ERROR')\n"
        "        break\n"
        "    except Exception:\n"
        "        if time.time() > end: raise\n"
        "        time.sleep(1)\n"
        f"while sum(1 for x in ray.nodes() if x['Alive']) < {n}:\n"
        "    if time.time() > end: sys.exit('nodes did not join')\n"
        "    time.sleep(0.5)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], env=reglab_env(), check=True, timeout=timeout + 60, capture_output=True
    )


@contextlib.contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    import fcntl

    with open(Path(tempfile.gettempdir()) / name, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """A head node and one worker node, 1 CPU each, on 127.0.0.1 (for one test module)."""
    ray_bin = VENV_BIN / "ray"
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("Ray is not installed: pip install 'reglab[cluster]'")
    if not ray_bin.exists():
        unavailable(f"the ray command is not in {VENV_BIN}")
    with _machine_lock("reglab-ray-tests.lock"):
        temp = Path(tempfile.mkdtemp(prefix="reglab-ray-"))
        port = free_port()
        env = reglab_env()
        # a dead node is noticed within a few seconds instead of ~30
        env.update(
            {
                "RAY_health_check_period_ms": "1000",
                "RAY_health_check_timeout_ms": "1000",
                "RAY_health_check_failure_threshold": "3",
            }
        )
        common = [
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--object-store-memory=100000000",
        ]
        head_cmd = [
            str(ray_bin),
            "start",
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            *common,
        ]
        worker_cmd = [
            str(ray_bin),
            "start",
            f"--address=127.0.0.1:{port}",
            f"--dashboard-agent-listen-port={free_port()}",
            *common,
        ]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            head_log = open(temp / "head.out", "wb")  # noqa: SIM115 - closed at teardown
            procs.append(
                subprocess.Popen(head_cmd, env=env, stdout=head_log, stderr=subprocess.STDOUT, start_new_session=True)
            )
            _wait_nodes(f"127.0.0.1:{port}", 1)
            worker_log = open(temp / "worker.out", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    worker_cmd, env=env, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            _wait_nodes(f"127.0.0.1:{port}", 2)
            yield RayCluster(f"127.0.0.1:{port}", temp, procs[0], procs[1], temp)
        finally:
            for p in reversed(procs):
                _kill_tree(p)
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def study_dir(tmp_path: Path) -> Callable[..., Path]:
    """``study_dir(doc)``: write the study (output inside tmp_path) and return its file."""

    def _make(doc: dict[str, Any]) -> Path:
        doc = dict(doc, output=str(tmp_path / "out"))
        return write_study(tmp_path, doc)

    return _make
