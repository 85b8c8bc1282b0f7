"""The driver of a study never imports torch (issue 13): its worker processes train; the driver
only asks, tells, stores and summarizes. Importing torch would cost it about a second of CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

DRIVER = """
import json, sys
from reglab.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = ("torch", "sklearn", "torch._dynamo")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.slow
def test_reglab_run_never_imports_torch_in_the_driver(
    tmp_path: Path, tiny_study: Callable[..., dict[str, Any]]
) -> None:
    doc = tiny_study(output=str(tmp_path / "out"), seeds=1)
    doc["search"] = {"trials": 2, "sampler": "random", "space": {"lr": {"low": 0.01, "high": 0.3, "log": True}}}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-c", DRIVER, "run", str(study), "--jobs", "1", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last == {"code": 0, "loaded": []}, res.stdout[-2000:] + res.stderr[-2000:]
    assert (tmp_path / "out" / "summary.json").exists()
