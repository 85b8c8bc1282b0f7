"""Fuzzing the study loader: whatever the document, the result is a valid StudySpec or a ConfigError
(which the CLI prints as one line) - never another exception, never a hang."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reglab.config import FIELD_SECTION, SECTIONS
from reglab.errors import ConfigError
from reglab.study.definition.spec import StudySpec, load_study, parse_study

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "name": "fuzz",
    "data": {"name": "digits", "n_train": 200, "val_fraction": 0.2, "synthetic": {"n_samples": 300}},
    "model": {"arch": "mlp", "hidden": [32, 16], "activation": "relu"},
    "train": {"optimizer": "momentum", "lr": 0.05, "epochs": 2, "batch_size": 32, "device": "cpu"},
    "regularization": {"l2": 1e-4, "dropout": 0.1, "augment": {"shift": 0.1}, "early_stopping": {"patience": 2}},
    "arms": {
        "none": {},
        "l2": {"l2": 1e-3},
        "nested": {"regularization": {"dropout": 0.3, "augment": {"rotation": 5}}, "train": {"lr": 0.1}},
        "dotted": {"regularization.l1": 1e-5, "train.epochs": 3},
    },
    "baseline": "none",
    "seeds": 3,
    "metric": {"select": "val_acc", "compare": "test_acc"},
    "diagnosis": {"high_variance_gap": 0.05},
    "jobs": 2,
    "output": "out",
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "digits",
            "mnist",
            "tune",
            "mlp",
            "cnn",
            "sgd",
            "relu",
            "1,2",
            "csv:",
            "csv:x.csv",
            "cpu",
            "cuda:x",
            "",
            "none",
            "l2",
            "val_acc",
            "test_acc",
        ]
    )
)
keys = st.text(max_size=10) | st.sampled_from([*SECTIONS, *FIELD_SECTION, *VALID, "low", "high", "choices", "log"])
anything = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys | st.integers(-3, 3), children, max_size=4),
    max_leaves=20,
)

# every place a value can go in a study document
PATHS: list[tuple[str, ...]] = [
    *[(k,) for k in VALID],
    *[(sec, f) for sec, model in SECTIONS.items() for f in model.model_fields],
    ("data", "synthetic", "n_samples"),
    ("data", "synthetic", "n_classes"),
    ("regularization", "augment", "shift"),
    ("regularization", "early_stopping", "patience"),
    ("metric", "select"),
    ("metric", "compare"),
    ("diagnosis", "high_bias_train_error"),
    ("arms", "none"),
    ("arms", "l2", "l2"),
    ("arms", "nested", "regularization"),
    ("arms", "nested", "train", "lr"),
    *[("arms", "l2", f) for f in FIELD_SECTION],
    ("arms", "dotted", "regularization.l1"),
    ("arms", "new-arm"),
    ("search",),
    ("search", "trials"),
]


# a study that tunes its arms (the search section and search dimensions in arms)
VALID_SEARCH: dict[str, Any] = {
    **VALID,
    "search": {"sampler": "random", "trials": 4, "space": {"lr": {"low": 0.01, "high": 0.5, "log": True}}},
    "arms": {
        "none": {},
        "tuned": {
            "l2": {"low": 1e-5, "high": 1e-2, "log": True},
            "dropout": "tune",
            "epochs": {"low": 2, "high": 4, "int": True},
            "optimizer": {"choices": ["sgd", "momentum"]},
            "momentum": {"low": 0.5, "high": 0.9, "when": {"optimizer": ["momentum"]}},
        },
    },
}
DIM_KEYS = ["low", "high", "log", "step", "int", "choices", "when", "num"]
SEARCH_PATHS: list[tuple[str, ...]] = [
    *[("search", k) for k in ("sampler", "trials", "timeout", "pruner", "cv", "seed", "startup_trials", "space")],
    ("search", "space", "lr"),
    *[("search", "space", "lr", k) for k in DIM_KEYS],
    *[("arms", "tuned", f) for f in ("l2", "dropout", "epochs", "optimizer", "momentum", "lr", "hidden", "augment")],
    *[("arms", "tuned", f, k) for f in ("l2", "epochs", "optimizer", "momentum") for k in DIM_KEYS],
    ("arms", "tuned", "momentum", "when", "optimizer"),
    ("arms", "none", "l1"),
]


def check(make: Any) -> StudySpec | None:
    """``make()`` must return a StudySpec or raise ConfigError; a valid spec must also be usable."""
    try:
        spec = make()
    except ConfigError as err:
        assert str(err)  # a message, printed as one line
        return None
    assert isinstance(spec, StudySpec)
    # what run_study does with a spec before training anything
    spec.fingerprint()
    resolved = spec.resolved()
    json.dumps(resolved)
    yaml.safe_dump(resolved)
    for arm in spec.arms:
        spec.arm(arm).run_config(spec.seed_list[-1])
    assert spec.baseline_arm in spec.arms
    return spec


def set_path(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = doc
    for k in path[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[path[-1]] = value


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the fuzzed files go (module-scoped: hypothesis calls a test many times)."""
    return tmp_path_factory.mktemp("fuzz")


def test_the_valid_documents_are_valid() -> None:
    spec = check(lambda: parse_study(copy.deepcopy(VALID)))
    assert spec is not None and list(spec.arms) == ["none", "l2", "nested", "dotted"]
    spec = check(lambda: parse_study(copy.deepcopy(VALID_SEARCH)))
    assert spec is not None and spec.search is not None


@FUZZ
@given(doc=anything)
@example(doc={"name": "x", "arms": {"a": None}})
@example(doc={"name": "x", "arms": {"a": {"data": {"name": []}}}})
@example(doc={"name": "x", "arms": {"a": {1: 2}}, "seeds": [True]})
@example(doc={"name": "x", "arms": {"a": {"regularization": {"dropout": "a,b"}}}})
def test_random_documents(doc: Any) -> None:
    check(lambda: parse_study(doc))


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(PATHS), anything), min_size=1, max_size=3),
    drop=st.lists(st.sampled_from(list(VALID)), max_size=2),
)
def test_valid_looking_studies_with_bad_values(
    fuzz_dir: Path, changes: list[tuple[tuple[str, ...], Any]], drop: list[str]
) -> None:
    doc = copy.deepcopy(VALID)
    for path, value in changes:
        set_path(doc, path, value)
    for k in drop:
        doc.pop(k, None)
    check(lambda: parse_study(doc, "fuzz.yaml"))
    # the same document through a file (line numbers are looked up in the text)
    try:
        text = yaml.safe_dump(doc, sort_keys=False)
    except yaml.YAMLError:
        return
    path = fuzz_dir / "valid_looking.yaml"
    path.write_text(text, encoding="utf-8")
    check(lambda: load_study(path))


@FUZZ
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(SEARCH_PATHS), anything | st.sampled_from(["grid", "tpe", "median", "tune"])),
        min_size=1,
        max_size=3,
    )
)
@example(changes=[(("arms", "tuned", "epochs", "high"), float("inf"))])
@example(changes=[(("arms", "tuned", "l2", "low"), float("nan"))])
@example(
    changes=[(("search", "sampler"), "grid"), (("search", "trials"), 10**5), (("arms", "tuned", "l2", "step"), 1e-300)]
)
@example(
    changes=[
        (("search", "sampler"), "grid"),
        (("search", "trials"), 10**5),
        (("arms", "tuned", "epochs", "high"), 1e300),
    ]
)
def test_search_studies_with_bad_values(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    doc = copy.deepcopy(VALID_SEARCH)
    for path, value in changes:
        set_path(doc, path, value)
    check(lambda: parse_study(doc, "fuzz.yaml"))


YAML_TOKENS = [
    "name:",
    "arms:",
    "seeds:",
    "data:",
    "train:",
    " lr:",
    " l2:",
    "a:",
    "none:",
    " {",
    "}",
    "[",
    "]",
    "- ",
    ": ",
    ", ",
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    "&a ",
    "*a",
    "*b",
    "!!int ",
    "!!float ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!python/object:os.system ",
    "!custom ",
    "2001-13-45",
    "2020-02-30",
    "12:30:61",
    "1e400",
    "0x1F",
    "0o9",
    ".inf",
    "-.nan",
    "~",
    "null",
    "true",
    "yes",
    "'",
    '"',
    "\\",
    "|",
    ">",
    "? ",
    "<<: ",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "#",
    "digits",
    "mnist",
    "tune",
    "x",
    "1",
    "-1",
    "0.5",
    "\x00",
    "\ufeff",
    "\u2028",
    "é",
]


@FUZZ
@given(tokens=st.lists(st.sampled_from(YAML_TOKENS), max_size=40))
@example(tokens=["name:", " x", "\n", "arms:", " {", "a:", " {", "}", "}", "\n", "seeds:", " ", "2001-13-45"])
@example(tokens=["name:", " ", "!!int ", "x", "\n", "arms:", " &a ", "[", "*a", "]"])
def test_random_yaml_text(fuzz_dir: Path, tokens: list[str]) -> None:
    path = fuzz_dir / "tokens.yaml"
    path.write_text("".join(tokens), encoding="utf-8")
    check(lambda: load_study(path))


@FUZZ
@given(data=st.data())
def test_mutated_valid_yaml(fuzz_dir: Path, data: st.DataObject) -> None:
    text = yaml.safe_dump(VALID, sort_keys=False, default_flow_style=data.draw(st.sampled_from([False, None, True])))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 8)))
        text = text[:i] + data.draw(st.text(max_size=6) | st.sampled_from(YAML_TOKENS)) + text[j:]
    path = fuzz_dir / "mutated.yaml"
    path.write_text(text, encoding="utf-8")
    check(lambda: load_study(path))


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text(fuzz_dir: Path, text: str) -> None:
    path = fuzz_dir / "text.yaml"
    path.write_text(text, encoding="utf-8")
    check(lambda: load_study(path))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("name: t\narms: {a: {}}\nseeds: 2001-13-45\n", id="impossible-date"),
        pytest.param("name: 2020-02-30\narms: {a: {}}\n", id="impossible-date-name"),
        pytest.param("name: t\narms: {a: {}}\nseeds: !!int x\n", id="bad-int-tag"),
        pytest.param("name: t\narms: {a: {}}\nseeds: !!float x\n", id="bad-float-tag"),
        pytest.param("name: t\narms: &a {x: *a}\n", id="recursive-mapping"),
        pytest.param("name: t\narms: {a: {}}\nseeds: &s [1, *s]\n", id="recursive-list"),
        *[
            pytest.param("name: t\narms: {a: {}}\nmodel: {hidden: " + "[" * n + "]" * n + "}\n", id=f"deep-list-{n}")
            for n in (450, 700)
        ],
        *[
            pytest.param("name: t\narms: {a: " + "{a: " * n + "1" + "}" * (n + 1) + "\n", id=f"deep-mapping-{n}")
            for n in (450, 700)
        ],
        pytest.param(b"name: t\xff\n", id="not-utf8"),
        pytest.param("name: t\x00\n", id="nul"),
    ],
)
def test_hostile_yaml_is_a_config_error(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "hostile.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=str(path)):
        load_study(path)


# the CLI in a process whose address space is capped: an unbounded walk fails with MemoryError
CAPPED_CLI = """
import resource, sys
cap = 1536 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from reglab.cli import main
main(sys.argv[1:])
"""


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A study whose ``arms.a.augment`` mapping refers ``width`` times to the one before, ``levels``
    deep: a few hundred bytes that expand to width**levels values."""
    keys = "abcdefghijklmnop"[:width]
    lines = ["name: bomb", "data: {name: digits, n_train: 100}", "arms:", "  a:", "    augment:"]
    lines.append("      k0: &a0 {" + ", ".join(f"{k}: 1" for k in keys) + "}")
    for i in range(1, levels):
        lines.append(f"      k{i}: &a{i} {{" + ", ".join(f"{k}: *a{i - 1}" for k in keys) + "}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_alias_bomb_in_an_arm_is_refused_in_bounded_memory(tmp_path: Path, command: str) -> None:
    """Refused (one line, exit 2) in a process capped at 1.5 GB and well within the deadline; the
    last release's walk of the expanded tree took 4.5 GB in two minutes."""
    import subprocess
    import sys

    study = tmp_path / "bomb.yaml"
    study.write_text(_alias_bomb(), encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-c", CAPPED_CLI, command, str(study)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.count("\n") == 1 and "expands to more than 1,000,000 values" in res.stderr, res.stderr[-2000:]
    assert list(tmp_path.iterdir()) == [study]  # nothing written


def test_aliases_within_the_bound_still_load(tmp_path: Path) -> None:
    """Anchors and aliases are ordinary YAML: a study that repeats a section by alias is read as written."""
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: t\ntrain: &t {epochs: 2, device: cpu}\narms:\n  a: {train: *t}\n  b: {train: *t, l2: 0.001}\n",
        encoding="utf-8",
    )
    spec = load_study(study)
    assert [a.config.train.epochs for a in spec.arm_list] == [2, 2]


def test_an_alias_bomb_in_a_set_value_is_refused() -> None:
    from reglab.study.definition.spec import parse_sets

    bomb = "&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"
    levels = "".join(f" - &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 8))
    with pytest.raises(ConfigError, match=r"--set arms\.a\.augment: the document expands"):
        parse_sets([f"arms.a.augment=\n - {bomb}\n{levels}"])
