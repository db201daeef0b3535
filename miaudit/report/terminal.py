"""A short audit summary for the terminal, with rich.

Only the command line calls this (the library itself never prints). User strings are wrapped
in ``rich.text.Text`` so that an attack called ``[bold]x`` is shown as written, not parsed as
rich markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from miaudit.evaluation.results import AuditResult
from miaudit.report.inert import terminal_text
from miaudit.report.json_report import build_report_dict, fpr_key

__all__ = ["print_summary"]

_RISK_STYLES = {"low": "bold green", "medium": "bold yellow", "high": "bold red"}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _tpr_cell(attack: dict, fpr: float, with_ci: bool) -> str:
    key = fpr_key(fpr)
    if key not in attack["tpr_at_fpr"]:
        return "n/a"
    iv = attack["tpr_at_fpr_interval"][key]
    text = _fmt(attack["tpr_at_fpr"][key])
    if with_ci:
        text += f" [{_fmt(iv['low'])}–{_fmt(iv['high'])}]"
    if not iv["resolvable"]:
        text += " †"
    return text


def _match_table(match: dict) -> Table:
    """The recipe-match table: target and each reference, train (IN) and test (OUT)."""
    table = Table(title="Reference models against the target", title_justify="left")
    for column in ("model", "n train", "train acc", "train loss", "KS train"):
        table.add_column(column, justify="right")
    for column in ("test acc", "test loss", "KS test", "match"):
        table.add_column(column, justify="right")
    t = match["target"]
    table.add_row(
        "target",
        str(t["n_members"]),
        _fmt(t["train_accuracy"]),
        _fmt(t["train_loss"]),
        "",
        _fmt(t["test_accuracy"]),
        _fmt(t["test_loss"]),
        "",
        "",
    )
    for r in match["references"]:
        table.add_row(
            f"ref {r['model']}",
            str(r["n_in"]),
            _fmt(r["train_accuracy"]),
            _fmt(r["train_loss"]),
            _fmt(r["ks_train"]),
            _fmt(r["test_accuracy"]),
            _fmt(r["test_loss"]),
            _fmt(r["ks_test"]),
            "yes" if r["matched"] else "NO",
        )
    tol = match["tolerance"]
    table.caption = (
        f"matched: accuracies within ±{tol['accuracy']}, KS statistics ≤ "
        f"{tol['ks_statistic']} ({match['n_matched']} of {len(match['references'])})"
    )
    return table


def _auc_cell(attack: dict) -> str:
    """AUC and the half-width of its interval (exact bounds are in report.json)."""
    interval = attack["auc_interval"]
    if interval["low"] is None or interval["high"] is None:
        return _fmt(attack["auc"])
    return f"{_fmt(attack['auc'])} ±{(interval['high'] - interval['low']) / 2:.3f}"


def print_summary(
    result: AuditResult, console: Console | None = None, report: dict | None = None
) -> None:
    """Print the metrics table, the verdict and the warnings of an audit.

    Parameters
    ----------
    result : AuditResult
        The audit to summarise.
    console : rich.console.Console, optional
        Where to print; a new stdout console by default. Pass ``Console(width=...)`` for
        output that does not depend on the terminal (tests, logs).
    report : dict, optional
        :func:`build_report_dict` of ``result`` when already built, to avoid redoing it.
    """
    console = console if console is not None else Console()
    report = report if report is not None else build_report_dict(result)
    table = Table(title="Membership inference attacks", title_justify="left")
    table.add_column("attack", overflow="fold")
    table.add_column("AUC ± 95%", justify="right", no_wrap=True)
    table.add_column("TPR@0.1%", justify="right")
    table.add_column("TPR@1% [95% CI]", justify="right", no_wrap=True)
    table.add_column("advantage", justify="right")
    table.add_column("ε", justify="right")
    unresolvable = False
    for attack in report["attacks"]:
        unresolvable |= any(not iv["resolvable"] for iv in attack["tpr_at_fpr_interval"].values())
        table.add_row(
            Text(terminal_text(attack["name"])),
            _auc_cell(attack),
            _tpr_cell(attack, 0.001, with_ci=False),
            _tpr_cell(attack, 0.01, with_ci=True),
            _fmt(attack["advantage"]),
            _fmt(attack["epsilon_lower_bound"], 2),
        )
    console.print(table)
    if unresolvable:
        console.print("† too few non-members to resolve this FPR", style="dim")
    spent = [
        f"{label} {d['queries_per_record']['mean']:.1f} (max {d['queries_per_record']['max']})"
        for label, d in (report["target"].get("attack_details") or {}).items()
        if isinstance(d, dict) and "queries_per_record" in d
    ]
    if spent:
        console.print(Text(terminal_text("Label queries per record: " + ", ".join(spent))))
    refs = report["target"].get("references") or {}
    if refs.get("recipe_match") is not None:
        console.print(_match_table(refs["recipe_match"]))
    if (calibration := refs.get("calibration")) is not None:
        tried = ", ".join(f"{c['value']} ({c['distance']:.3f})" for c in calibration["candidates"])
        console.print(
            Text(
                f"Calibration of {calibration['param']}: {calibration['chosen_value']} "
                f"(values tried, distance: {tried})"
            )
        )
    verdict = report["verdict"]
    line = Text("Verdict: ")
    line.append(verdict["risk"].upper(), style=_RISK_STYLES[verdict["risk"]])
    line.append(terminal_text(f" — {verdict['reason']}"))
    console.print(line)
    if report["warnings"]:
        console.print(Text("Warnings:", style="bold yellow"))
        for warning in report["warnings"]:
            console.print(Text(terminal_text(f"  • {warning}")))
