"""The README's regularizer table is the one generated from the registry, and ``reglab regularizers``
prints it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reglab.cli import app
from reglab.regularizers import REGULARIZERS
from reglab.regularizers.registry import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- regularizers:start -->", "<!-- regularizers:end -->"


def test_readme_table_is_generated_from_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index(START) + len(START) : text.index(END)].strip("\n") + "\n"
    assert table == markdown_table(), "regenerate it with `reglab regularizers --markdown`"


def test_the_command_lists_every_regularizer() -> None:
    md = CliRunner().invoke(app, ["regularizers", "--markdown"])
    assert md.exit_code == 0 and md.stdout == markdown_table()
    rich = CliRunner().invoke(app, ["regularizers"])
    assert rich.exit_code == 0
    for name, spec in REGULARIZERS.items():
        assert name in md.stdout and spec.citation in md.stdout
        assert name in rich.stdout
