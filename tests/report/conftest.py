"""Fixtures for the report tests: small real studies (run once per session through one shared
executor, so worker processes start once), copies to edit, and a headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cilib import unavailable

SMALL: dict[str, Any] = {
    "data": {"name": "digits", "n_train": 200},
    "model": {"hidden": [32]},
    "train": {"epochs": 3},
}
CRAZY: dict[str, Any] = {"lr": 1.0e6, "l2": 10, "optimizer": "sgd"}  # the loss is NaN in epoch 1
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Output directories of four real studies:

    - ``main``: 3 arms (none, l1, dropout) x 2 seeds;
    - ``single``: 1 arm, 1 seed;
    - ``diverged``: ``none`` and an arm whose lr of 1e6 makes the loss NaN in epoch 1;
    - ``all_failed``: two arms x 2 seeds that all diverge in epoch 1 (nothing to compare).
    """
    from reglab.study import parse_study, run_protocol
    from reglab.study.execution.executors import LocalExecutor

    root = tmp_path_factory.mktemp("report-studies")
    docs = {
        "main": {"arms": {"none": {}, "l1": {"l1": 1e-3}, "dropout": {"dropout": 0.3}}, "seeds": 2},
        "single": {"arms": {"none": {}}, "seeds": 1},
        "diverged": {"arms": {"none": {}, "crazy": CRAZY}, "seeds": 1},
        "all_failed": {"arms": {"none": CRAZY, "crazy": {**CRAZY, "l2": 5}}, "seeds": 2},
    }
    executor = LocalExecutor(2)
    out: dict[str, Path] = {}
    try:
        for name, doc in docs.items():
            spec = parse_study({"name": f"report-{name}", **SMALL, **doc, "output": str(root / name)})
            out[name] = run_protocol(spec, progress=False, executor=executor).output_dir
    finally:
        executor.close()
    yield out


@pytest.fixture
def copy_of(studies: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """``copy_of(name)``: a fresh copy of a study's outputs to edit (the originals stay intact)."""

    def _copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(studies[name], dst, ignore=shutil.ignore_patterns("report.*", "*.db"))
        return dst

    return _copy


# -- headless Chromium ----------------------------------------------------------------------------


def _find_chromium() -> str | None:
    for c in CHROMIUM_CANDIDATES:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    return None


def _may_install() -> bool:
    wants = os.environ.get("CI", "").lower() == "true" or os.environ.get("REGLAB_INSTALL_BROWSER") == "1"
    return wants and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure_chromium() -> str:
    """The Chromium binary; installed with apt-get (Debian package ``chromium``) when missing, if
    running as root with CI=true or REGLAB_INSTALL_BROWSER=1; otherwise the test is skipped."""
    found = _find_chromium()
    if found:
        return found
    if not _may_install():
        unavailable(
            "headless Chromium not found (/usr/bin/chromium); install it with `apt-get install -y chromium`, "
            "or run as root with CI=true or REGLAB_INSTALL_BROWSER=1 to let the test install it"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
        if res.returncode != 0:
            unavailable(f"installing Chromium failed ({' '.join(cmd)}): {res.stderr.strip()[-300:]}")
    found = _find_chromium()
    if not found:
        unavailable("apt-get installed chromium but no chromium binary was found")
    return found


class Chromium:
    """Runs headless Chromium on a local file: ``dump_dom`` (DOM after scripts ran, and the
    browser's log with console messages) and ``screenshot``."""

    FLAGS = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
    )

    def __init__(self, binary: str, profile_root: Path) -> None:
        self.binary = binary
        self.profile_root = profile_root
        self._n = 0

    def _run(self, url: str, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        self._n += 1
        profile = self.profile_root / f"profile-{self._n}"
        profile.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, *self.FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def dump_dom(self, page: Path, size: str | None = None) -> tuple[str, str]:
        """``size`` ("1280,900"): the window, for layout measured by the page's scripts."""
        window = () if size is None else (f"--window-size={size}",)
        res = self._run(page.resolve().as_uri(), "--enable-logging=stderr", "--v=0", *window, "--dump-dom")
        assert res.returncode == 0, f"chromium failed ({res.returncode}): {res.stderr[-2000:]}"
        return res.stdout, res.stderr

    def screenshot(self, page: Path, target: Path, size: str = "1280,2400") -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        res = self._run(page.resolve().as_uri(), f"--screenshot={target}", f"--window-size={size}")
        assert res.returncode == 0 and target.is_file(), f"screenshot failed: {res.stderr[-2000:]}"


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    return Chromium(ensure_chromium(), tmp_path_factory.mktemp("chromium"))
