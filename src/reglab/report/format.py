"""Summary numbers as report text (formatting only: no statistics are computed here)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from reglab.report.data import num
from reglab.stats.summary import MetricStats


def is_fraction(metric: str) -> bool:
    """Shown as a percentage: accuracy-like metrics of the registry (``test_bacc``, ``val_f1``),
    the accuracy gap and sparsity; RMSE, AUC, R², losses and norms are shown as numbers."""
    from reglab.tasks import metric_info

    info = metric_info(metric)
    if info is not None:
        return info.percent
    return metric.endswith("_acc") or metric in ("accuracy", "gap", "sparsity")


def fmt_value(metric: str, x: Any, places: int | None = None) -> str:
    """``x`` in ``metric``'s units: a percentage with two decimals, else four significant digits,
    or ``places`` decimals (:func:`column_places`: the same for every number of a table column)."""
    v = num(x)
    if v is None:
        return "–"
    if is_fraction(metric):
        return f"{v * 100:.2f}%"
    return f"{v:.4g}" if places is None else f"{v:.{places}f}"


def fmt_diff(metric: str, x: Any, places: int | None = None) -> str:
    v = num(x)
    if v is None:
        return "–"
    if is_fraction(metric):
        return f"{v * 100:+.2f} pp"
    return f"{v:+.4g}" if places is None else f"{v:+.{places}f}"


def column_places(values: Iterable[Any], significant: int = 4, most: int = 6) -> int:
    """Decimals that give a column's largest number ``significant`` significant digits, for every
    number of the column: 67.0008 and 56.25 read "67.00" and "56.25", never "67" beside "56.25"
    (``.4g`` drops the trailing zeros of one value and not of the next)."""
    sizes = [abs(v) for v in map(num, values) if v is not None and v != 0]
    if not sizes:
        return significant - 1
    return min(most, max(0, significant - 1 - math.floor(math.log10(max(sizes)))))


def fmt_interval(lo: Any, hi: Any, one: Callable[[Any], str]) -> str:
    if num(lo) is None or num(hi) is None:
        return "–"
    return f"[{one(lo)}, {one(hi)}]"


def fmt_ci(metric: str, st: MetricStats, places: int | None = None) -> str:
    """The 95 % CI of a metric's mean, ``[low, high]`` in the metric's units."""
    return fmt_interval(st.ci_low, st.ci_high, lambda x: fmt_value(metric, x, places))


def fmt_p(x: Any) -> str:
    v = num(x)
    if v is None:
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_prob(x: Any) -> str:
    v = num(x)
    return "–" if v is None else f"{v:.2f}"


def fmt_seconds(x: Any) -> str:
    v = num(x)
    if v is None:
        return "–"
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(round(v), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_param(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def raw(x: Any) -> str:
    """The exact number for ``data-value`` attributes (tests and scripts compare it to summary.json)."""
    v = num(x)
    return "" if v is None else repr(v)


def cell(text: str, value: Any = None, key: str = "") -> dict[str, str]:
    """A table cell: its text, the exact number behind it and what it is (``data-key``)."""
    return {"text": text, "value": raw(value), "key": key}


_OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "momentum": "SGD with momentum"}


def regime(config: Any, n_params: int | None = None) -> str | None:
    """What was trained, in one phrase, from a run configuration (a dumped ``RunConfig``): "100
    training examples of digits, a 512-512-unit MLP, 150 epochs of Adam (lr 0.001, batch 32)";
    with ``n_params``, the network's trainable parameters after it ("a 512-512-unit MLP of 300,042
    trainable parameters"); None when the configuration is not readable."""
    if not isinstance(config, dict):
        return None
    data, model, train = (_section(config, k) for k in ("data", "model", "train"))
    name = data.get("name") or "the data"
    n = data.get("n_train")
    what = f"{n} training examples of {name}" if isinstance(n, int) else f"the training split of {name}"
    arch = model.get("arch")
    if model.get("class_path"):
        net = f"the model {str(model['class_path']).rsplit(':', 1)[-1].rsplit('.', 1)[-1]}"
    elif arch == "mlp" and isinstance(model.get("hidden"), list):
        net = f"a {'-'.join(str(h) for h in model['hidden'])}-unit MLP"
    elif arch == "cnn" and isinstance(model.get("channels"), list):
        net = f"a CNN with {'-'.join(str(c) for c in model['channels'])} channels"
    else:
        net = f"a {arch or 'network'}"
    if n_params is not None:
        net += f" of {n_params:,} trainable parameter{'s' * (n_params != 1)}"
    opt = train.get("optimizer")
    how = f"{train.get('epochs', '?')} epochs" + (f" of {_OPTIMIZER_NAMES.get(opt, opt)}" if opt else "")
    extra = [f"lr {fmt_param(train['lr'])}" if train.get("lr") is not None else "", f"batch {train.get('batch_size')}"]
    details = ", ".join(x for x in extra if x and not x.endswith("None"))
    return f"{what}, {net}, {how}" + (f" ({details})" if details else "")


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def settings(overrides: Any, tuned: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """An arm's settings as ``{"text", "tuned"}`` items: its overrides of the shared settings
    (nested ones as ``augment.shift = 0.125``) and, for a tuned arm, the values tuning chose
    (``l2 = 0.00032``, marked tuned) in place of the range it was given."""
    tuned = dict(tuned or {})
    out: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        key = prefix.rsplit(".", 1)[-1]
        if prefix in tuned or key in tuned:
            chosen = tuned.pop(prefix) if prefix in tuned else tuned.pop(key)
            out.append({"text": f"{prefix} = {fmt_param(chosen)}", "tuned": True})
        elif isinstance(value, dict) and value and not ({"low", "high", "choices"} & set(value)):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, dict) or value == "tune":
            out.append({"text": f"{prefix}: tuned", "tuned": True})
        else:
            out.append({"text": f"{prefix} = {fmt_param(value)}", "tuned": False})

    if isinstance(overrides, dict):
        for k, v in overrides.items():
            walk(str(k), v)
    out += [{"text": f"{k} = {fmt_param(v)}", "tuned": True} for k, v in tuned.items()]
    return out
