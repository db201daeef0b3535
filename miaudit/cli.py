"""The ``miaudit`` command: ``demo``, ``audit CONFIG.yaml`` and ``datasets``.

Only this module prints. Bad input ends with exit status 2 and a one-paragraph message that
names the field or file at fault; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from miaudit import __version__
from miaudit.errors import InvalidAuditInput, UserCodeError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
#: The user's training code raised (its traceback is shown).
EXIT_USER_CODE = 1
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miaudit",
        description="Audit a trained model for membership inference leakage.",
    )
    parser.add_argument("--version", action="version", version=f"miaudit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, no table")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="audit an overfit MLP on scikit-learn's digits")
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder")

    audit = sub.add_parser("audit", help="run the audit a YAML file describes")
    audit.add_argument("config", type=Path, help="YAML audit file")
    audit.add_argument("--out", type=Path, help="output folder (default: the file's output)")
    audit.add_argument("--data-dir", type=Path, help="folder holding the data sets")
    _trust_flags(audit)
    audit.add_argument(
        "--per-record-csv",
        type=Path,
        help="also write every audited record's scores and flags to this CSV file",
    )
    audit.add_argument(
        "--mlflow",
        action="store_true",
        help="log the audit as an MLflow run (as 'tracking: mlflow' in the file)",
    )
    audit.add_argument("--mlflow-uri", help="MLflow tracking URI (default: MLflow's own)")
    _dry_run_flag(audit)

    sweep = sub.add_parser(
        "sweep", help="audit every defense setting of a YAML file's 'sweep:' list"
    )
    sweep.add_argument("config", type=Path, help="YAML audit file with a 'sweep:' list")
    sweep.add_argument("--out", type=Path, help="output folder (default: the file's output)")
    sweep.add_argument("--data-dir", type=Path, help="folder holding the data sets")
    _trust_flags(sweep, code=False)
    _dry_run_flag(sweep)

    unlearn = sub.add_parser(
        "unlearn", help="run the deletion study of a YAML file's 'unlearning:' section"
    )
    unlearn.add_argument("config", type=Path, help="YAML audit file with 'unlearning:'")
    unlearn.add_argument("--out", type=Path, help="output folder (default: the file's output)")
    unlearn.add_argument("--data-dir", type=Path, help="folder holding the data sets")
    _dry_run_flag(unlearn)

    experiment = sub.add_parser(
        "experiment", help="self-audit: n models of one recipe, each audited with references"
    )
    experiment.add_argument("config", type=Path, help="YAML experiment file")
    experiment.add_argument("--out", type=Path, help="output folder (default: the file's output)")
    experiment.add_argument("--data-dir", type=Path, help="folder holding the data sets")
    _dry_run_flag(experiment)

    plan = sub.add_parser(
        "plan-references",
        help="write the design of an audit's reference models, to train them elsewhere",
    )
    plan.add_argument("config", type=Path, help="YAML audit file")
    plan.add_argument("--out", type=Path, required=True, help="design file to write (.npz)")
    plan.add_argument(
        "--references", type=int, help="number of references (default: what the attacks use)"
    )
    plan.add_argument("--data-dir", type=Path, help="folder holding the data sets")

    datasets = sub.add_parser("datasets", help="list the data sets found and where")
    datasets.add_argument("--data-dir", type=Path, help="folder holding the data sets")
    return parser


def _dry_run_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and print the plan (models to train and cached, queries, "
        "memory, time from one timed epoch); train nothing, write nothing",
    )


def _trust_flags(parser: argparse.ArgumentParser, *, code: bool = True) -> None:
    """The flags by which a user says what may run: model files that are programs, and the
    Python code an audit file names. Audit files travel, so neither is ever implied."""
    parser.add_argument(
        "--trust-model-code",
        "--trust-pickle",
        dest="trust_pickle",
        action="store_true",
        help="allow model files that are programs (TorchScript, torch.export, pickle): "
        "loading them can run code, so only for files whose author you trust",
    )
    if not code:
        return
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="allow running the Python training code the audit file names (python: recipes, "
        "estimators by import path); only for files whose author you trust",
    )


def _styled(prefix: str, style: str, text: str):
    """``prefix`` in ``style``, then ``text`` verbatim: user text never goes through rich's
    markup parser (an attack named ``[/bogus]`` must print as written, not crash)."""
    from rich.text import Text

    from miaudit.report.inert import terminal_text

    line = Text(prefix, style=style)
    line.append(terminal_text(text))  # and never drives the terminal (ESC sequences)
    return line


def _inert(text: str):
    """User text as a rich ``Text``: never markup, never a terminal control sequence."""
    from rich.text import Text

    from miaudit.report.inert import terminal_text

    return Text(terminal_text(text))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from rich.console import Console

    console = Console(stderr=False, quiet=args.quiet)
    errors = Console(stderr=True)
    try:
        if args.command == "demo":
            return _run_demo(args, console)
        if args.command == "audit":
            return _run_audit_file(args, console)
        if args.command == "sweep":
            return _run_sweep_file(args, console)
        if args.command == "unlearn":
            return _run_unlearn_file(args, console)
        if args.command == "experiment":
            return _run_experiment_file(args, console)
        if args.command == "plan-references":
            return _plan_references(args, console)
        return _list_datasets(args, console)
    except InvalidAuditInput as error:
        if args.debug:
            raise
        from miaudit.config import capped

        message = capped(str(error))
        errors.print(_styled("error: ", "bold red", message), highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    except UserCodeError as error:
        if args.debug:
            raise
        # The user's own code failed: its traceback is theirs to read, under one line of
        # ours saying which model and seed. Models trained before it are in the cache.
        import traceback

        cause = error.__cause__
        if cause is not None:
            trace = "".join(traceback.format_exception(cause))
            errors.print(_inert(trace.rstrip()), highlight=False, soft_wrap=True)
        errors.print(_styled("error: ", "bold red", str(error)), highlight=False, soft_wrap=True)
        errors.print(
            "models trained before this one are kept in the model cache; a rerun trains "
            "only what is missing",
            highlight=False,
        )
        return EXIT_USER_CODE
    except KeyboardInterrupt:
        errors.print("interrupted; no report was written")
        return EXIT_INTERRUPTED


def _run_demo(args: argparse.Namespace, console) -> int:
    from miaudit.demo import demo_config
    from miaudit.validation import check_writable_dir

    check_writable_dir(args.out, "--out")

    return _execute(demo_config(), args.out, console, data_dir=None, trust_pickle=False)


def _config_and_out(args: argparse.Namespace, load=None):
    """The audit file (read by ``load``, default :func:`~miaudit.config.load_config`) and
    its output folder, checked writable before any work: a report that cannot be written
    fails now, not after the models have trained."""
    from miaudit.config import load_config
    from miaudit.validation import check_writable_dir

    config = (load or load_config)(args.config)
    out = args.out or config.output
    if out is None:
        raise InvalidAuditInput(
            f"{args.config}: no output folder; give --out DIR or an 'output:' field"
        )
    check_writable_dir(out, "--out")
    return config, out


def _print_table(console, title: str, rows: list[list[str]], paths: dict) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows[1:]:
        table.add_row(*(_inert(cell) for cell in row))  # user labels are never markup
    console.print(table)
    console.print(_inert("wrote " + ", ".join(str(p) for p in paths.values())), highlight=False)


def _run_audit_file(args: argparse.Namespace, console) -> int:
    # run_config's preflight then checks the attacks and settings before PyTorch is
    # imported or any data is loaded.
    if args.dry_run:
        return _dry_run(args, console)
    config, out = _config_and_out(args)
    csv_path = getattr(args, "per_record_csv", None)
    if csv_path is not None:
        from miaudit.validation import check_writable_dir

        if Path(csv_path).is_dir():
            raise InvalidAuditInput(f"--per-record-csv: {str(csv_path)!r} is a folder")
        check_writable_dir(Path(csv_path).absolute().parent, "--per-record-csv")
    tracking = config.tracking
    if args.mlflow or args.mlflow_uri:
        from miaudit.config import TrackingSection

        tracking = (tracking or TrackingSection()).model_copy(
            update={"uri": args.mlflow_uri or (tracking.uri if tracking else None)}
        )
    if tracking is not None:
        from miaudit.tracking import _mlflow

        _mlflow()  # missing MLflow ends the run now, not after the models have trained
    return _execute(
        config,
        out,
        console,
        data_dir=args.data_dir,
        trust_pickle=args.trust_pickle,
        trust_code=args.trust_code,
        per_record_csv=csv_path,
        tracking=tracking,
    )


def _dry_run(args: argparse.Namespace, console) -> int:
    from miaudit.config import load_config
    from miaudit.pipeline import plan_config

    config = load_config(args.config)
    estimate = plan_config(
        config,
        data_dir=args.data_dir,
        trust_pickle=args.trust_pickle,
        trust_code=args.trust_code,
        on_stage=lambda message: console.log(_inert(message)),
    )
    _print_plan(console, args.config, [("", estimate.lines())])
    return EXIT_OK


def _print_plan(console, path: Path, blocks: list[tuple[str, list[str]]]) -> None:
    """A plan for the terminal: a title, then each block's lines (under its heading)."""
    console.print(_inert(f"Plan of {path} (nothing was trained or written):"))
    for heading, lines in blocks:
        indent = "  "
        if heading:
            console.print(_inert(f"  {heading}"), highlight=False)
            indent = "    "
        for line in lines:
            console.print(_inert(f"{indent}{line}"), highlight=False)


def _stage_log(console):
    return lambda message: console.log(_inert(message))


def _run_sweep_file(args: argparse.Namespace, console) -> int:

    from miaudit.sweep import plan_sweep, run_sweep, sweep_table

    if args.dry_run:
        from miaudit.config import load_config
        from miaudit.sweep import plan_sweep_costs

        plans = plan_sweep_costs(
            load_config(args.config),
            data_dir=args.data_dir,
            trust_pickle=args.trust_pickle,
            on_stage=_stage_log(console),
        )
        blocks = [(f"setting {label!r}:", estimate.lines()) for label, estimate in plans]
        timed = [e.seconds for _, e in plans]
        if all(t is not None for t in timed):
            from miaudit.resources import duration_text

            blocks.append(("", [f"all settings: about {duration_text(sum(timed))} of training"]))
        _print_plan(console, args.config, blocks)
        return EXIT_OK
    config, out = _config_and_out(args)
    plan_sweep(config)  # every setting checked before the first model trains
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each setting's caveats are in its own report
        result = run_sweep(
            config,
            data_dir=args.data_dir,
            trust_pickle=args.trust_pickle,
            on_stage=lambda message: console.log(_inert(message)),
        )
    from miaudit.report.sweep_report import write_sweep_report

    paths = write_sweep_report(result, out)
    _print_table(console, "Defenses and their price", sweep_table(result.rows), paths)
    return EXIT_OK


def _run_unlearn_file(args: argparse.Namespace, console) -> int:

    from miaudit.unlearn_study import run_unlearning, unlearning_table

    if args.dry_run:
        from miaudit.config import load_config
        from miaudit.unlearn_study import plan_unlearning

        estimate = plan_unlearning(
            load_config(args.config), data_dir=args.data_dir, on_stage=_stage_log(console)
        )
        _print_plan(console, args.config, [("", estimate.lines())])
        return EXIT_OK
    config, out = _config_and_out(args)
    if config.unlearning is None:
        raise InvalidAuditInput(f"{args.config}: no 'unlearning:' section")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_unlearning(
            config, data_dir=args.data_dir, on_stage=lambda m: console.log(_inert(m))
        )
    from miaudit.report.unlearning_report import write_unlearning_report

    paths = write_unlearning_report(result, out)
    title = "Unlearning: deleted against never-seen records"
    _print_table(console, title, unlearning_table(result.rows), paths)
    return EXIT_OK


def _progress(console):
    from miaudit.console_progress import ProgressDisplay

    return ProgressDisplay(console)


def _run_experiment_file(args: argparse.Namespace, console) -> int:

    from miaudit.config import load_experiment_config
    from miaudit.experiment_run import (
        experiment_table,
        plan_experiment,
        run_experiment,
        write_experiment,
    )

    if args.dry_run:
        estimate = plan_experiment(
            load_experiment_config(args.config),
            data_dir=args.data_dir,
            on_stage=_stage_log(console),
        )
        _print_plan(console, args.config, [("", estimate.lines())])
        return EXIT_OK
    config, out = _config_and_out(args, load_experiment_config)
    progress = _progress(console)
    with warnings.catch_warnings(), progress:
        warnings.simplefilter("ignore")  # each target's caveats are in its own report
        run = run_experiment(
            config,
            data_dir=args.data_dir,
            on_stage=lambda m: console.log(_inert(m)),
            on_reference=progress.models,
        )
    paths = write_experiment(run, out)
    _print_table(console, "Self-audit (mean over targets)", experiment_table(run), paths)
    return EXIT_OK


def _execute(
    config,
    out: Path,
    console,
    *,
    data_dir,
    trust_pickle: bool,
    trust_code: bool = False,
    per_record_csv=None,
    tracking=None,
) -> int:

    from miaudit.evaluation import LowFprResolutionWarning, SmallSliceWarning
    from miaudit.pipeline import run_config

    progress = _progress(console)

    def on_stage(message: str) -> None:
        console.log(_inert(message))  # user text (attack labels) is never markup

    with warnings.catch_warnings(record=True) as caught, progress:
        warnings.simplefilter("always")
        result = run_config(
            config,
            data_dir=data_dir,
            trust_pickle=trust_pickle,
            trust_code=trust_code,
            on_stage=on_stage,
            on_epoch=progress.epochs,
            on_reference=progress.models,
            on_step=progress.step,
        )
    # The report (matplotlib, jinja2) loads only now: a configuration error must end the
    # run within seconds of its start, before any model is trained.
    from miaudit.report import print_summary, write_report

    paths = write_report(result, out)
    if per_record_csv is not None:
        from miaudit.report.leaks import write_per_record_csv

        paths["csv"] = write_per_record_csv(result, per_record_csv)
    if tracking is not None:
        import json

        from miaudit.tracking import log_to_mlflow

        report = json.loads(paths["json"].read_text(encoding="utf-8"))
        run_id = log_to_mlflow(
            report, paths, tracking_uri=tracking.uri, experiment=tracking.experiment
        )
        console.log(_inert(f"logged to MLflow: experiment {tracking.experiment!r}, run {run_id}"))
    print_summary(result, console=console)
    # Evaluation caveats are already in the summary (merged across attacks); print the
    # other warnings raised during the run (e.g. by training) once each.
    in_summary = (LowFprResolutionWarning, SmallSliceWarning, DeprecationWarning)
    shown = {str(w.message) for w in caught if not issubclass(w.category, in_summary)}
    for message in sorted(shown - set(result.warnings)):
        console.print(_styled("warning: ", "yellow", message), highlight=False)
    console.print(_inert("wrote " + ", ".join(str(p) for p in paths.values())), highlight=False)
    return EXIT_OK


def _plan_references(args: argparse.Namespace, console) -> int:
    from miaudit.config import load_config
    from miaudit.external_references import write_design
    from miaudit.pipeline import plan_reference_design
    from miaudit.validation import check_writable_dir

    if args.out.suffix != ".npz":
        raise InvalidAuditInput(f"--out: the design is an .npz file, got {str(args.out)!r}")
    check_writable_dir(args.out.absolute().parent, "--out")
    config = load_config(args.config)
    arrays = plan_reference_design(config, data_dir=args.data_dir, n_references=args.references)
    path = write_design(args.out, arrays)
    k, n = arrays["inclusion"].shape
    console.print(
        _inert(
            f"wrote {path}: {k} references, each trained on {int(arrays['train_size'])} of "
            f"{n} candidate records (row k of 'inclusion' over 'candidates') with seed "
            f"'seeds'[k]. Train each with your own code, answer the "
            f"{arrays['answer_records'].size} records of 'answer_records', and save an .npz "
            "with 'logits' or 'probabilities' (references x records x classes), "
            "'record_ids' and this 'inclusion'; then give it as "
            "references: {predictions_file: ...}"
        ),
        highlight=False,
    )
    return EXIT_OK


def _list_datasets(args: argparse.Namespace, console) -> int:
    from rich.table import Table

    from miaudit.data import list_datasets

    table = Table(title="miaudit data sets")
    for column in ("name", "found", "where / why not", "description"):
        table.add_column(column, overflow="fold")
    for info in list_datasets(args.data_dir):
        table.add_row(
            info.name,
            "yes" if info.found else "no",
            str(info.location) if info.found else str(info.reason),
            info.description,
        )
    console.print(table)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
