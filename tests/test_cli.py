"""The command line: an end-to-end run, user errors as one line with exit code 2, gradcheck."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reglab.cli import app, main

SMALL = ["--n-train", "100", "--hidden", "16", "--device", "cpu"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_train_end_to_end(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--epochs", "2", *SMALL])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.stdout
    assert "mlp on digits" in result.stdout


def test_train_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--epochs", "2", "--l2", "1e-3", "--dropout", "0.2", "--json", *SMALL])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "completed"
    assert len(out["history"]) == 2
    assert out["config"]["regularization"]["l2"] == 1e-3
    assert out["config"]["data"]["n_train"] == 100
    assert sorted(out["info"]["regularizers"]) == ["dropout", "l2"]
    assert 0.0 <= out["final"]["test_acc"] <= 1.0


def test_train_options_reach_the_config(runner: CliRunner) -> None:
    args = ["train", "--epochs", "1", "--json", *SMALL, "--augment", "shift=0.1,hflip=true"]
    args += ["--early-stopping", "3", "--snapshot", "2", "--optimizer", "nesterov", "--model", "cnn"]
    args += ["--channels", "4,8", "--schedule", "cosine", "--lr", "0.01"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.stdout)["config"]
    reg = cfg["regularization"]
    assert reg["augment"]["shift"] == 0.1 and reg["augment"]["hflip"] is True
    assert reg["early_stopping"]["patience"] == 3 and reg["snapshot"]["cycles"] == 2
    assert cfg["train"]["optimizer"] == "nesterov" and cfg["train"]["schedule"] == "cosine"
    assert cfg["model"]["arch"] == "cnn" and cfg["model"]["channels"] == [4, 8]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--dropout", "1.5"], "--dropout"),
        (["--epochs", "0"], "--epochs"),
        (["--l2", "-1"], "--l2"),
        (["--optimizer", "foo"], "--optimizer"),
        (["--data", "foo"], "--data"),
        (["--model", "rnn"], "--model"),
        (["--hidden", "a,b"], "--hidden"),
        (["--lr", "0"], "--lr"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_values_give_one_line_and_exit_2(runner: CliRunner, args: list[str], option: str) -> None:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {option}:")
    assert result.stdout == ""


def test_unknown_dataset_lists_the_valid_ones(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--data", "foo"])
    assert "digits" in result.stderr and "synthetic" in result.stderr


def test_non_numeric_value_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--epochs", "many"])
    assert result.exit_code == 2
    assert "--epochs" in result.output and "Traceback" not in result.output


def test_main_entry_point_reports_errors_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "--dropout", "1.5"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("error: --dropout:") and "Traceback" not in err


def test_gradcheck_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["gradcheck"])
    assert result.exit_code == 0, result.output
    for name in ("cross_entropy", "l1 (+ loss)", "l2 (+ loss)", "elastic_net (+ loss)"):
        assert name in result.stdout
    assert "FAIL" not in result.stdout


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "gradcheck", "datasets"):
        assert command in result.stdout


@pytest.mark.slow
def test_installed_script_prints_json() -> None:
    script = Path(sys.executable).parent / "reglab"
    if not script.exists():
        pytest.skip("the reglab console script is not installed next to this interpreter")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(script), "train", "--epochs", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "completed" and len(out["history"]) == 2
    assert out["config"]["data"]["name"] == "digits"
    assert out["final"]["test_acc"] > 0.5  # two epochs on all of digits learn something
    assert "Traceback" not in proc.stderr


def test_train_set_takes_any_setting_by_flat_or_dotted_name(runner: CliRunner) -> None:
    args = ["train", "--epochs", "1", "--json", *SMALL, "--l2", "1e-4"]
    args += ["--set", "dropout=[0.2]", "--set", "augment.shift=0.1", "--set", "train.lr=0.01", "--set", "swa=true"]
    args += ["--set", "l2=1e-3"]  # --set is applied after the flags
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.stdout)["config"]
    reg = cfg["regularization"]
    assert reg["dropout"] == [0.2] and reg["augment"]["shift"] == 0.1 and reg["l2"] == 1e-3
    assert reg["swa"] == {"start": 0.75, "lr": None} and cfg["train"]["lr"] == 0.01


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("dropuot=0.3", "error: --set dropuot: unknown setting; did you mean dropout"),
        ("dropout=1.5", "error: --set regularization.dropout: dropout rates must be in [0, 1)"),
        ("dropout", "error: --set: expected KEY=VALUE, got 'dropout'"),
        ("train.foo=1", "error: --set train.foo: unknown field"),
    ],
)
def test_train_set_errors_name_the_key(runner: CliRunner, item: str, message: str) -> None:
    result = runner.invoke(app, ["train", "--set", item])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(message), result.stderr


def test_version_and_short_help(runner: CliRunner) -> None:
    from reglab import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"reglab {__version__}"
    short, long = runner.invoke(app, ["-h"]), runner.invoke(app, ["--help"])
    assert short.exit_code == 0 and short.stdout == long.stdout


def test_every_command_takes_h(runner: CliRunner) -> None:
    import typer.main

    names = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"train", "run", "validate", "init", "demo", "report"} <= set(names)
    for name in names:
        result = runner.invoke(app, [name, "-h"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.stdout and "--help" in result.stdout, name


def test_train_help_shows_the_run_configurations_defaults(runner: CliRunner) -> None:
    """``train``'s options default to "as configured" (None); ``--help`` shows RunConfig's values."""
    from reglab.config import RunConfig

    out = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}, terminal_width=200).stdout
    cfg = RunConfig()
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ --")}
    assert f"[default: ({cfg.train.epochs})]" in lines["--epochs"]
    assert f"[default: ({cfg.train.lr})]" in lines["--lr"]
    assert f"[default: ({cfg.data.name})]" in lines["--data"]
    assert f"[default: ({','.join(map(str, cfg.model.hidden))})]" in lines["--hidden"]
    assert "[default: (off)]" in lines["--early-stopping"] and "[default: (0.0)]" in lines["--l2"]
    run_help = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}, terminal_width=200).stdout
    assert "[default: local]" in run_help  # the commands whose defaults are plain values show them too


def test_init_writes_a_starter_that_validates_and_refuses_to_overwrite(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "study.yaml").read_text(encoding="utf-8")
    for section in ("data:", "model:", "train:", "arms:", "seeds:", "# search:"):
        assert f"\n{section}" in text, section
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 15  # a commented starter, not a bare document
    ok = runner.invoke(app, ["validate", "study.yaml"])
    assert ok.exit_code == 0 and "4 arms x 5 seeds" in ok.stdout, ok.output

    (tmp_path / "study.yaml").write_text("mine\n", encoding="utf-8")
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 2 and "exists; pass --force" in again.stderr
    assert (tmp_path / "study.yaml").read_text(encoding="utf-8") == "mine\n"
    forced = runner.invoke(app, ["init", "--force", "--data", "diabetes", "-o", "study.yaml"])
    assert forced.exit_code == 0, forced.output
    assert "name: diabetes" in (tmp_path / "study.yaml").read_text(encoding="utf-8")
    assert runner.invoke(app, ["validate", "study.yaml"]).exit_code == 0


def test_init_unknown_dataset_suggests_the_close_name(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "--data", "minst", "--output", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --data: unknown dataset 'minst'; did you mean mnist"), result.stderr
    assert not (tmp_path / "s.yaml").exists()


def test_train_a_run_that_fails_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Batch norm meeting a last batch of one sample (161 = 5 x 32 + 1) fails inside torch."""
    argv = ["train", "--data", "digits", "--n-train", "161", "--batch-size", "32", "--batch-norm"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--hidden", "32", "--epochs", "1", "--device", "cpu"])
    code = exit_.value.code
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err and err.strip().startswith("error: the run failed: ValueError: Expected more than 1")
