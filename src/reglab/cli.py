"""The ``reglab`` command line. Heavy imports happen inside commands so ``--help`` is fast.

Every user error (bad option, unknown name, missing data file, invalid study) is printed as one
line on stderr with exit code 2 - never a traceback. A study (``run``, ``demo``, ``worker``) in
which a run failed with an exception writes every output and then exits with code 3
(:data:`EXIT_RUNS_FAILED`); running the same command again redoes the failed runs.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from reglab.errors import ReglabError

app = typer.Typer(
    name="reglab",
    help="Which regularization, how strong, with which training hyperparameters - and proof.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)

EXIT_RUNS_FAILED = 3  # a study finished, but some of its runs failed with an exception
_PANEL_DATA = "Data"
_PANEL_MODEL = "Model"
_PANEL_REG = "Regularization"
_PANEL_TRAIN = "Training"


def _print_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in message.splitlines() or [""]:  # several problems (a study file's): one line each
        console.print(f"[bold red]error:[/] {escape(line)}")


def _fail(message: str) -> None:
    _print_error(message)
    raise typer.Exit(2)


def _option_names(message: str) -> str:
    """Say ``--dropout`` instead of ``regularization.dropout`` in CLI messages."""
    from reglab.config import FIELD_SECTION

    message = message.replace("regularization.augment.", "--augment ")
    for key, section in sorted(FIELD_SECTION.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(f"{section}.{key}:", f"--{key.replace('_', '-')}:")
    return message


def _print_version(value: bool) -> None:
    if value:
        from reglab import __version__

        print(f"reglab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print reglab's version and exit",
            show_default=False,
        ),
    ] = False,
) -> None:
    """Which regularization, how strong, with which training hyperparameters - and proof."""


class _TrainCommand(typer.core.TyperCommand):
    """``reglab train``: its options default to "as in the run configuration" (None), so ``--help``
    looks the defaults up in :class:`~reglab.config.RunConfig` - only when help is asked for."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from reglab.config import FIELD_SECTION, RunConfig

        cfg = RunConfig().model_dump(mode="json")
        where = {"data": "data.name", "model": "model.arch", "early_stopping": "", "snapshot": "", "swa": ""}
        for param in self.params:
            if param.name is None or param.default is not None or not isinstance(param, typer.core.TyperOption):
                continue
            path = where.get(param.name, f"{FIELD_SECTION.get(param.name, '')}.{param.name}")
            value: Any = cfg
            for part in path.split(".") if path.strip(".") else ["-"]:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, list):
                value = ",".join(map(str, value))
            if isinstance(value, dict):  # augment: every transform at zero
                value = None if any(value.values()) else "off"
            if value is None and (param.rich_help_panel == _PANEL_REG or param.name == "grad_clip"):
                value = "off"
            if value is not None:
                param.show_default = str(value).lower() if isinstance(value, bool) else str(value)
        super().format_help(ctx, formatter)


@app.command(cls=_TrainCommand)
def train(
    data: Annotated[
        str | None, typer.Option(help="dataset name, or csv:, parquet:, npz:, images:PATH", rich_help_panel=_PANEL_DATA)
    ] = None,
    data_dir: Annotated[str | None, typer.Option(help="folder with dataset files", rich_help_panel=_PANEL_DATA)] = None,
    n_train: Annotated[int | None, typer.Option(help="training subset size", rich_help_panel=_PANEL_DATA)] = None,
    val_fraction: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_DATA)] = None,
    split_seed: Annotated[int | None, typer.Option(rich_help_panel=_PANEL_DATA)] = None,
    model: Annotated[
        str | None, typer.Option(help="mlp, cnn or your own: pkg.module:Name", rich_help_panel=_PANEL_MODEL)
    ] = None,
    hidden: Annotated[str | None, typer.Option(help="MLP sizes, e.g. 256,128", rich_help_panel=_PANEL_MODEL)] = None,
    activation: Annotated[str | None, typer.Option(help="relu, tanh, gelu", rich_help_panel=_PANEL_MODEL)] = None,
    channels: Annotated[str | None, typer.Option(help="CNN widths, e.g. 32,64", rich_help_panel=_PANEL_MODEL)] = None,
    init: Annotated[str | None, typer.Option(help="default, he, xavier", rich_help_panel=_PANEL_MODEL)] = None,
    l1: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    l2: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    elastic_net: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    l1_ratio: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    weight_decay: Annotated[float | None, typer.Option(help="decoupled", rich_help_panel=_PANEL_REG)] = None,
    penalize_biases: Annotated[bool | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    dropout: Annotated[str | None, typer.Option(help="rate, or one per layer", rich_help_panel=_PANEL_REG)] = None,
    input_dropout: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    batch_norm: Annotated[bool | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    max_norm: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    label_smoothing: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    augment: Annotated[
        str | None,
        typer.Option(help="e.g. shift=0.1,rotation=10,scale=0.1,noise=0.1", rich_help_panel=_PANEL_REG),
    ] = None,
    mixup: Annotated[float | None, typer.Option(help="Beta alpha", rich_help_panel=_PANEL_REG)] = None,
    cutout: Annotated[int | None, typer.Option(help="square side", rich_help_panel=_PANEL_REG)] = None,
    input_noise: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_REG)] = None,
    early_stopping: Annotated[int | None, typer.Option(help="patience (epochs)", rich_help_panel=_PANEL_REG)] = None,
    swa: Annotated[bool | None, typer.Option(help="stochastic weight averaging", rich_help_panel=_PANEL_REG)] = None,
    snapshot: Annotated[int | None, typer.Option(help="snapshot-ensemble cycles", rich_help_panel=_PANEL_REG)] = None,
    optimizer: Annotated[str | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    lr: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    momentum: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    schedule: Annotated[str | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    epochs: Annotated[int | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    batch_size: Annotated[int | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    grad_clip: Annotated[float | None, typer.Option(rich_help_panel=_PANEL_TRAIN)] = None,
    seed: Annotated[int | None, typer.Option(help="init/order seed", rich_help_panel=_PANEL_TRAIN)] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, mps", rich_help_panel=_PANEL_TRAIN)] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE: any setting, flat or dotted (l2=1e-3, augment.shift=0.1); YAML value; repeatable",
            rich_help_panel=_PANEL_TRAIN,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print machine-readable results")] = False,
    save: Annotated[
        str | None, typer.Option(help="save the trained model here (safetensors; reglab export's format)")
    ] = None,
) -> None:
    """Train one model and print per-epoch metrics and the final test accuracy."""
    flat: dict[str, Any] = {k: v for k, v in locals().items() if v is not None and k not in ("as_json", "set_", "save")}
    from reglab.config import RunConfig

    if "data" in flat:
        flat["name"] = flat.pop("data")
    if "model" in flat:  # a registered name, or a class path (arguments: --set init_args.width=64)
        name = flat.pop("model")
        flat["class_path" if set(name) & {":", "."} else "arch"] = name
    if "augment" in flat:
        flat["augment"] = _parse_kv(flat["augment"], "--augment")
    if "early_stopping" in flat:
        flat["early_stopping"] = {"patience": flat["early_stopping"]}
    if "snapshot" in flat:
        flat["snapshot"] = {"cycles": flat["snapshot"]}
    try:
        cfg = RunConfig().override(flat)
    except ReglabError as err:
        msg = str(err).replace("data.name:", "--data:").replace("model.arch:", "--model:")
        _fail(_option_names(msg.replace("model.class_path:", "--model:")))
        return
    if set_:
        try:
            cfg = cfg.override(_parse_sets(set_), where="--set ")
        except ReglabError as err:
            _fail(str(err))
    if cfg.model.class_path is not None:  # your own model imports and takes its arguments
        from reglab.study.definition.spec import check_config

        check_config(cfg)
    _run_single(cfg, as_json, save)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as overrides; values parsed as YAML (``0.3``, ``true``, ``[0.5, 0.3]``)."""
    from reglab.config import FIELD_SECTION, SECTIONS
    from reglab.errors import suggest
    from reglab.study.definition.spec import parse_sets

    out = parse_sets(items)  # the same KEY=VALUE reading as `reglab run --set`
    for key in out:
        parts = key.split(".")
        if not (parts[0] in FIELD_SECTION or (parts[0] in SECTIONS and len(parts) > 1)):
            hint = suggest(parts[0], [*FIELD_SECTION, *SECTIONS], "`reglab schema` lists the settings")
            _fail(f"--set {key}: unknown setting; {hint}")
    return out


def _parse_kv(text: str, option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected key=value pairs, got {part!r}", param_hint=option)
        v: Any = value.strip()
        if v.lower() in ("true", "false"):
            v = v.lower() == "true"
        out[f"{key.strip()}"] = v
    return out


def _run_single(cfg: Any, as_json: bool, save: str | None = None) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from reglab.data import load_data
    from reglab.training.engine import fit

    console = Console(stderr=as_json)
    data = load_data(cfg.data)
    table = Table(title=f"{cfg.model.label} on {cfg.data.name}  {data.sizes()}", show_edge=False)
    for col in (
        "epoch",
        "train loss",
        "train acc",
        "val loss",
        "val acc",
        "lr",
        "grad norm",
        "sparsity",
        "s",
    ):
        table.add_column(col, justify="right")

    def add_row(h: dict[str, float]) -> None:
        table.add_row(
            f"{int(h['epoch'])}",
            f"{h['train_loss']:.4f}",
            f"{h['train_acc']:.2%}" if "train_acc" in h else "-",  # regression: no accuracy
            f"{h['val_loss']:.4f}",
            f"{h['val_acc']:.2%}" if "val_acc" in h else f"RMSE {h.get('val_rmse', float('nan')):.4g}",
            f"{h['lr']:.3g}",
            f"{h['grad_norm']:.3g}",
            f"{h['sparsity']:.1%}",
            f"{h['time']:.2f}",
        )

    def train_or_fail(**kw: Any) -> Any:
        """A run that fails with an exception (e.g. batch norm meeting a batch of one sample) is one
        line and exit code 3, as in a study; the user's input errors stay exit 2."""
        from reglab.errors import from_user_code

        try:
            return fit(cfg, data, keep_model=save is not None, **kw)
        except ReglabError:
            raise
        except BaseException as err:  # the model's sys.exit too; a real Ctrl-C still interrupts
            if not from_user_code(err):
                raise
            _print_error(f"the run failed: {type(err).__name__}: {err}")
            raise typer.Exit(EXIT_RUNS_FAILED) from None

    if as_json:
        result = train_or_fail()
        _save_trained(result, save, cfg, data, console)
        print(json.dumps({"config": cfg.model_dump(mode="json"), **result.to_dict()}, indent=2))
        return
    with Live(table, console=console, refresh_per_second=8, transient=False):
        result = train_or_fail(callbacks=[add_row])
    console.print()  # the result line stands apart from the table above it
    if result.status != "completed":
        console.print(f"[bold red]{result.status}:[/] {result.reason}")
        raise typer.Exit(1)
    f = result.final
    if "test_acc" not in f:  # regression (reglab.tasks): RMSE and R² in the target's units
        console.print(
            f"test RMSE [bold]{f['test_rmse']:.4g}[/]  (train {f['train_rmse']:.4g}, val {f['val_rmse']:.4g}, "
            f"test R² {f['test_r2']:.3f}, best epoch {int(f['best_epoch'])}, {result.info['wall_time']:.1f}s)"
        )
        return
    console.print(
        f"test accuracy [bold]{f['test_acc']:.2%}[/]  (train {f['train_acc']:.2%}, val {f['val_acc']:.2%}, "
        f"gap {f['gap'] * 100:+.2f} pp, best epoch {int(f['best_epoch'])}, {result.info['wall_time']:.1f}s)"
    )
    _save_trained(result, save, cfg, data, console)


def _save_trained(result: Any, save: str | None, cfg: Any, data: Any, console: Any) -> None:
    """``reglab train --save``: the evaluated model, as a study's confirmation runs save theirs."""
    if save is None or result.model is None:
        return
    from reglab.study.results.saved_models import save_run_model

    path = save_run_model(result.model, save, cfg, data, result.final)
    console.print(f"model saved: [bold]{path}[/] (reglab.study.results.export.load_model reads it)")


@app.command()
def metrics() -> None:
    """List the metrics (metric.select / metric.compare: val_<name>, test_<name>) and the losses."""
    from rich.console import Console
    from rich.table import Table

    from reglab.tasks import LOSSES, METRICS

    table = Table(title="metrics", show_edge=False)
    for col in ("name", "metric", "better", "range", "tasks"):
        table.add_column(col)
    for name, m in METRICS.items():
        better = "higher" if m.higher_is_better else "lower"
        table.add_row(name, m.label, better, f"[{m.low:g}, {m.high:g}]", ", ".join(m.tasks))
    losses = Table(title="losses (train.loss; auto: cross_entropy, bce or mse by task)", show_edge=False)
    for col in ("name", "loss", "tasks"):
        losses.add_column(col)
    for name, loss in LOSSES.items():
        losses.add_row(name, loss.doc, ", ".join(loss.tasks))
    console = Console()
    console.print(table)
    console.print(losses)


@app.command()
def datasets(
    data_dir: Annotated[str | None, typer.Option(help="also look here for dataset files")] = None,
) -> None:
    """List the datasets with their sizes and where their files are found."""
    from rich.console import Console
    from rich.table import Table

    from reglab.data.catalog import describe, user_data_rows

    table = Table(show_edge=False)
    for col in ("name", "description", "size", "location"):
        table.add_column(col)
    for row in [*describe(data_dir), *user_data_rows()]:  # registered datasets, then your own data
        table.add_row(row["name"], row["description"], row["size"], row["location"])
    Console().print(table)


@app.command()
def regularizers(
    markdown: Annotated[bool, typer.Option("--markdown", help="print the README's Markdown table")] = False,
) -> None:
    """List the registered regularizers: settings, what they do, sources, default tuning ranges."""
    from reglab.regularizers.registry import describe, markdown_table

    if markdown:
        print(markdown_table(), end="")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, show_lines=True)
    table.add_column("name", no_wrap=True)
    for col in ("settings", "what it does", "source", "default tune range"):
        table.add_column(col)
    for row in describe():
        table.add_row(row["name"], row["settings"], row["what"], row["source"], row["tune"] or "-")
    Console().print(table)


@app.command()
def gradcheck(seed: Annotated[int, typer.Option()] = 0) -> None:
    """Check the gradients of the loss and every registered penalty by two-sided differences."""
    from rich.console import Console
    from rich.table import Table

    from reglab.training.gradcheck import check_registered

    results = check_registered(seed=seed)
    table = Table(show_edge=False)
    for col in ("function", "checked", "max relative error", "result"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, str(r.n_checked), f"{r.max_rel_error:.2e}", "[green]ok[/]" if r.ok else "[red]FAIL[/]")
    Console().print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _study_run(
    spec: Any,
    jobs: int | None,
    new: bool,
    progress: bool,
    storage: str | None = None,
    executor: Any = None,
    mlflow: str | None = None,
) -> Any:
    from rich.console import Console

    from reglab.study.protocol.protocol import run_protocol
    from reglab.study.results.console import print_summary

    console = Console()
    try:
        results = run_protocol(spec, jobs=jobs, new=new, progress=progress, storage=storage, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    st = results.stats
    if st.replaced:
        console.print(
            f"the tuning found other values than the last confirmation used: its {st.replaced} runs were replaced"
        )
    if st.skipped or st.stale:
        console.print(f"resumed: {st.skipped} runs already stored, {st.stale} interrupted runs redone, {st.new} new")
    print_summary(results.summary, console)
    console.print(f"outputs in [bold]{results.output_dir}[/]")
    if st.models is not None:
        _models_note(st.models, results.output_dir, console)
    _write_report(results.output_dir, console)
    tracked = mlflow is None or _track(results.output_dir, mlflow, console)
    _exit_if_failed(results, console)
    if not tracked:
        raise typer.Exit(1)
    return results


def _track(output_dir: Any, uri: str, console: Any) -> bool:
    """``--mlflow``: log the stored study (idempotent: a resume adds no duplicate runs). A failure
    here loses no result; it says how to log them later."""
    from rich.markup import escape

    from reglab.study.results.tracking import log_study

    try:
        done = log_study(output_dir, uri)
    except ReglabError as err:
        console.print(
            f"[yellow]not logged to MLflow:[/] {escape(str(err))}; "
            f"`reglab export {escape(str(output_dir))} --mlflow URI` logs it later"
        )
        return False
    _print_logged(done, uri, console)
    return True


def _print_logged(done: Any, uri: str, console: Any) -> None:
    from rich.markup import escape

    from reglab.urls import mask_url

    console.print(
        f"MLflow: {done.logged} runs logged, {done.kept} already there, {done.replaced} replaced; "
        f"experiment {escape(repr(done.experiment))} at {escape(mask_url(uri))}, parent run {done.parent_run_id}"
    )


def _exit_if_failed(results: Any, console: Any) -> None:
    """Exit with :data:`EXIT_RUNS_FAILED` when a run failed with an exception (outputs are written)."""
    failed = results.failed
    if failed:
        n = len(failed)
        console.print(
            f"[red]{n} run{'s' if n != 1 else ''} failed[/] (reasons above and in summary.json, finals.csv); "
            "fix the cause and run the same command again to redo them"
        )
        raise typer.Exit(EXIT_RUNS_FAILED)


def _models_note(m: Any, out: Any, console: Any) -> None:
    """Where the saved models are, and what is missing (save_models: best | all)."""
    text = f"saved models: {m.kept} in {out}/models"
    if not m.complete:
        text += " (all arms kept until every run is done)"
    if m.missing:
        text += f"; {m.missing} stored runs have none (trained before save_models was set: --new retrains them)"
    console.print(text + (f"; `reglab export {out}` writes them out" if m.kept else ""))


_STUDY_SET = typer.Option(
    "--set",
    help="KEY=VALUE overriding the study file's value at a dotted key (train.epochs=5, seeds=3, arms.l2.l2=1e-3; "
    "a setting's own name, epochs=5, means its shared section's); YAML value; repeatable",
    show_default=False,
)


_MLFLOW = typer.Option(
    "--mlflow",
    metavar="URI",
    help="also log the study to this MLflow tracking URI (sqlite:///mlflow.db, http://HOST:5000): a parent run, "
    "one nested run per arm x seed and per tuning trial, the report attached; needs pip install 'reglab\\[mlflow]'",
    show_default=False,
)


@app.command()
def run(
    study: Annotated[str, typer.Argument(help="study file (YAML)")],
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="parallel workers (default: cores)")] = None,
    new: Annotated[bool, typer.Option(help="discard stored results of a changed study")] = False,
    output: Annotated[str | None, typer.Option(help="output directory")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL (default: SQLite in output)")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    executor: Annotated[str, typer.Option(help="local (processes here) or ray (a Ray cluster)")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray head HOST:PORT, auto or ray://HOST:PORT (default: $RAY_ADDRESS)")
    ] = None,
    cpus_per_run: Annotated[float, typer.Option(help="CPUs per run on Ray")] = 1,
    gpus_per_run: Annotated[float, typer.Option(help="GPUs per run on Ray (fractions share a GPU)")] = 0,
    set_: Annotated[list[str] | None, _STUDY_SET] = None,
    mlflow: Annotated[str | None, _MLFLOW] = None,
) -> None:
    """Run (or resume) a study: every arm x seed, statistics, diagnosis, outputs."""
    from reglab.study.definition.spec import load_study

    spec = load_study(study, set_, functions=False)  # a function's settings: checked in a worker (run_protocol)
    if output:
        spec = spec.model_copy(update={"output": output})
    if jobs is not None and jobs < 1:
        _fail("--jobs: must be >= 1")
    if mlflow is not None:  # the extra installed, the URI working: checked before any training
        from reglab.study.results.tracking import open_experiment

        open_experiment(mlflow, spec.name)
    ex = _executor(executor, address, cpus_per_run, gpus_per_run, jobs)
    _study_run(spec, jobs, new, progress, storage, ex, mlflow=mlflow)


def _executor(kind: str, address: str | None, cpus_per_run: float, gpus_per_run: float, jobs: int | None) -> Any:
    """None for the local executor (the study makes its own), else a connected RayExecutor."""
    if kind not in ("local", "ray"):
        _fail(f"--executor: unknown executor {kind!r}; valid choices: local, ray")
    if kind == "local":
        if address is not None or gpus_per_run:
            _fail("--address/--gpus-per-run: only with --executor ray")
        return None
    from reglab.study.execution.ray_executor import RayExecutor

    ex = RayExecutor(address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    if jobs is not None:
        ex.slots = min(ex.slots, jobs)
    return ex


@app.command()
def worker(
    study: Annotated[str, typer.Argument(help="study file (YAML)")],
    storage: Annotated[str, typer.Option(help="shared storage, e.g. postgresql://USER:PASSWORD@HOST:5432/DB")],
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="parallel runs here (default: cores)")] = None,
    output: Annotated[str | None, typer.Option(help="output directory")] = None,
    stale_after: Annotated[
        float, typer.Option(help="seconds without a heartbeat after which another worker's run is redone")
    ] = 120.0,
    report: Annotated[bool, typer.Option(help="write report.html at the end")] = True,
) -> None:
    """Join a study in a shared storage: workers on any machines tune and train its runs (each run
    once) until none is left; then each writes the summary."""
    from rich.console import Console

    from reglab.study.definition.spec import load_study
    from reglab.study.protocol.protocol import work
    from reglab.study.results.console import print_summary

    spec = load_study(study)
    if output:
        spec = spec.model_copy(update={"output": output})
    if jobs is not None and jobs < 1:
        _fail("--jobs: must be >= 1")

    console = Console(highlight=False)
    results = work(spec, storage, jobs=jobs, stale_after=stale_after, say=lambda m: console.print(m, markup=False))
    print_summary(results.summary, console)
    console.print(f"outputs in [bold]{results.output_dir}[/]")
    if results.stats.models is not None:
        _models_note(results.stats.models, results.output_dir, console)
    if report:
        _write_report(results.output_dir, console)
    _exit_if_failed(results, console)


@app.command()
def validate(
    study: Annotated[str, typer.Argument(help="study file (YAML)")],
    set_: Annotated[list[str] | None, _STUDY_SET] = None,
) -> None:
    """Check a study file without running it."""
    from reglab.study.definition.spec import load_study

    spec = load_study(study, set_)
    from reglab.data import check_source
    from reglab.study.execution.own_model import check_outputs

    check_source(spec.data)  # the user's data, loaded and split as `run` would (nothing is written)
    check_outputs(spec)  # the user's own model, run once on one batch
    n = len(spec.arms) * len(spec.seed_list)
    most = " at most" if spec.adaptive is not None else ""  # adaptive seeds: up to max per arm
    print(
        f"{study}: ok - {len(spec.arms)} arms x {len(spec.seed_list)} seeds{most} = {n} runs{most}, "
        f"baseline {spec.baseline_arm}"
    )


@app.command()
def init(
    data: Annotated[str, typer.Option(help="a dataset of `reglab datasets`")] = "digits",
    output: Annotated[str, typer.Option("--output", "-o", help="the study file to write")] = "study.yaml",
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter study (data, model, train, arms, seeds, search) to edit and run."""
    from pathlib import Path

    from reglab.study.definition.spec import starter_study

    path = Path(output)
    if path.exists() and not force:
        _fail(f"{path} exists; pass --force to overwrite it, or --output another file")
    try:
        text = starter_study(data, path.name)
    except ReglabError as err:
        _fail(str(err))
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        _fail(f"cannot write {path}: {err.strerror or err}")
    print(f"wrote {path}: check it with `reglab validate {path}`, run it with `reglab run {path}`")


@app.command()
def export(
    study_dir: Annotated[str, typer.Argument(help="a study's output directory")],
    arm: Annotated[str | None, typer.Option(help="the arm whose models to write (default: the best arm)")] = None,
    to: Annotated[str | None, typer.Option(help="destination folder (default: STUDY_DIR/export/ARM)")] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            metavar="URI",
            help="instead, log the study's runs to this MLflow tracking URI (as reglab run --mlflow does)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write an arm's saved models (save_models: best | all) with their run configs and a loading example;
    or, with --mlflow, log the study to MLflow."""
    if mlflow is not None:
        if arm is not None or to is not None:
            _fail("--arm/--to: not with --mlflow (it logs every arm's runs)")
        from rich.console import Console

        from reglab.study.results.tracking import log_study

        _print_logged(log_study(study_dir, mlflow), mlflow, Console(highlight=False))
        return
    from reglab.study.results.export import export_models

    result = export_models(study_dir, arm, to)
    for note in result.skipped:
        print(f"skipped {note}", file=sys.stderr)
    which = "best arm" if result.best else "arm"
    print(f"{which} {result.arm!r} of study {result.study!r}: {len(result.files)} models in {result.folder}")
    print(f"loading example: {result.folder / 'README.md'}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of study files (for editor completion)."""
    from reglab.study.definition.spec import StudySpec

    print(json.dumps(StudySpec.model_json_schema(), indent=2))


DEMO_LESSON = "a regime where the network over-fits, so regularization should pay"


@app.command()
def demo(
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="parallel workers (default: cores)")] = None,
    output: Annotated[str, typer.Option(help="output directory")] = "reglab-demo",
    seeds: Annotated[int | None, typer.Option(help="override the number of seeds")] = None,
    new: Annotated[bool, typer.Option(help="start over instead of resuming")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """The built-in study on digits: 9 regularization arms x 10 seeds on a network that over-fits."""
    from rich.console import Console

    from reglab.report.format import regime
    from reglab.study.definition.spec import demo_study

    spec = demo_study(output=output, seeds=seeds)
    what = regime(spec.arm(spec.baseline_arm).config.model_dump(mode="json"))
    n_arms, n_seeds = len(spec.arms), len(spec.seed_list)
    Console(highlight=False).print(f"[bold]demo:[/] {what}: {DEMO_LESSON}. {n_arms} arms x {n_seeds} seeds.")
    _study_run(spec, jobs, new, progress)


@app.command()
def path(
    study: Annotated[str, typer.Argument(help="study file (YAML)")],
    param: Annotated[str, typer.Option(help="setting to sweep, e.g. l2, dropout, l1_ratio, augment.shift")],
    values: Annotated[str, typer.Option(help="LOW:HIGH or a comma-separated list")],
    num: Annotated[int, typer.Option(help="points for LOW:HIGH")] = 10,
    scale: Annotated[str, typer.Option(help="auto (log when HIGH/LOW >= 100), log or linear")] = "auto",
    seeds: Annotated[int, typer.Option(help="seeds per value")] = 3,
    arm: Annotated[str | None, typer.Option(help="arm to start from (default: the baseline)")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j")] = None,
    new: Annotated[bool, typer.Option(help="discard stored results of a changed sweep")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Sweep one regularization strength (log scale) over seeds: train/val accuracy, sparsity, norm."""
    from rich.console import Console
    from rich.table import Table

    from reglab.study.definition.spec import load_study
    from reglab.study.protocol.path import parse_values, run_path

    spec = load_study(study)
    if seeds < 1:
        _fail("--seeds: must be >= 1")
    results, rows = run_path(
        spec,
        param,
        parse_values(values, num, scale),
        seeds=seeds,
        arm=arm,
        jobs=jobs,
        new=new,
        progress=progress,
    )
    table = Table(title=f"regularization path: {param}", show_edge=False)
    for col in ("value", "train acc", "val acc", "gap (train-val)", "sparsity", "weight L2", "runs"):
        table.add_column(col, justify="right")
    by_value: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "completed":
            by_value.setdefault(r["value"], []).append(r)
    best = max(by_value, key=lambda v: sum(r["val_acc"] for r in by_value[v]) / len(by_value[v]), default=None)
    for v, rs in by_value.items():

        def mean(k: str, rs: list[dict[str, Any]] = rs) -> float:
            got = [r[k] for r in rs if r.get(k) is not None]  # a user function may not return every metric
            return sum(got) / len(got) if got else float("nan")

        mark = " *" if v == best else ""
        table.add_row(
            f"{v:.3g}{mark}",
            f"{mean('train_acc'):.2%}",
            f"{mean('val_acc'):.2%}",
            f"{mean('train_acc') - mean('val_acc'):+.2%}",
            f"{mean('sparsity'):.1%}",
            f"{mean('weight_l2'):.3g}",
            str(len(rs)),
        )
    console = Console()
    console.print(table)
    console.print(f"* best validation accuracy. outputs in [bold]{results.output_dir}[/]")
    _write_report(results.output_dir, console)


def _write_report(output_dir: Any, console: Any) -> None:
    """Write report.html after run/demo/path; a failure here never loses the results."""
    from reglab.report import build_report

    try:
        path = build_report(output_dir)
    except ReglabError as err:
        console.print(f"[yellow]report not written:[/] {err}")
        return
    console.print(f"report: [bold]{path}[/]")


@app.command()
def report(
    output_dir: Annotated[str, typer.Argument(help="a study's output directory")],
    fmt: Annotated[str, typer.Option("--format", help="html or md")] = "html",
    png: Annotated[str | None, typer.Option(help="also save each figure as PNG in this folder")] = None,
) -> None:
    """Write the study's self-contained HTML report (or a Markdown summary with --format md)."""
    from reglab.report import build_report

    if fmt not in ("html", "md"):
        _fail(f"--format: unknown format {fmt!r}; valid choices: html, md")
    path = build_report(output_dir, fmt=fmt, png_dir=png)
    if fmt == "md":
        print(path.read_text(encoding="utf-8"))
    else:
        print(path)


@app.command()
def plan(
    output_dir: Annotated[str, typer.Argument(help="a finished (pilot) study's output directory")],
    delta: Annotated[
        float, typer.Option(help="the difference to detect, in the compare metric's units (0.01 of accuracy = 1 pp)")
    ],
    power: Annotated[float, typer.Option(help="the chance of detecting it")] = 0.8,
) -> None:
    """Seeds each arm needs to detect a difference of --delta with --power, from a pilot study's
    paired differences (paired t-test, alpha 0.05 split over the arms)."""
    import math

    if not delta > 0:
        _fail("--delta: must be > 0 (in the compare metric's units, e.g. 0.01 for 1 pp of accuracy)")
    if not 0 < power < 1:
        _fail("--power: must be between 0 and 1 (e.g. 0.8)")
    from reglab.stats.sequential import plan_seeds
    from reglab.study.results.adaptive import pilot_diffs

    metric, base, diffs = pilot_diffs(output_dir)
    if not diffs:
        _fail(f"{output_dir}: a single arm; nothing to compare with the baseline")
    rows = plan_seeds(diffs, delta, power=power)
    print(f"seeds to detect {delta:g} of {metric} against {base} with power {power:g}")
    print(
        f"(paired t-test, two-sided, alpha 0.05 / {len(rows)} arms; sd: the pilot's seed-to-seed standard "
        "deviation of the paired difference)"
    )
    width = max(len("arm"), *(len(r.arm) for r in rows))
    print(f"{'arm':<{width}}  pilot seeds  {'mean diff':>10}  {'sd':>10}  seeds needed")
    for r in rows:
        need = "-" if not math.isfinite(r.sd) else str(r.seeds) if r.seeds is not None else "> 10000"
        mean = f"{r.mean:+.4g}" if math.isfinite(r.mean) else "-"
        sd = f"{r.sd:.4g}" if math.isfinite(r.sd) else "-"
        print(f"{r.arm:<{width}}  {r.n_pilot:>11}  {mean:>10}  {sd:>10}  {need:>12}")
    print("an adaptive study (seeds: {min: 5, max: N, step: 5}) with max near these counts stops earlier where it can")


def _kill_children() -> None:
    """SIGKILL this process's children (found in /proc): a second Ctrl-C does not wait for them."""
    import os
    import signal
    from pathlib import Path

    me = os.getpid()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def _catch_signals() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` once (the study stops its workers, gives its
    claims back and says what is stored); a second one exits at once."""
    import os
    import signal
    import threading

    from reglab.errors import Interrupted

    seen: list[int] = []

    def handle(signum: int, frame: Any) -> None:
        if seen:
            os.write(2, b"interrupted again: exiting now\n")
            _kill_children()
            os._exit(128 + signum)
        seen.append(signum)
        raise Interrupted(signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line and exit code 2; SIGINT/SIGTERM one line
    saying what is stored, and exit code 130/143."""
    from reglab.errors import Interrupted

    _catch_signals()
    try:
        app(args=argv, standalone_mode=True)
    except ReglabError as err:
        _print_error(str(err))
        sys.exit(getattr(err, "exit_code", 2))  # 4: another process is running the study
    except (KeyboardInterrupt, Interrupted) as err:
        signum = err.signum if isinstance(err, Interrupted) else 2
        stored = err.stored if isinstance(err, Interrupted) else None
        if stored:
            print(f"interrupted: {stored}; run the same command to resume", file=sys.stderr)
        else:
            print("interrupted", file=sys.stderr)
        sys.exit(128 + signum)


if __name__ == "__main__":
    main()
