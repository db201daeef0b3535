"""The self-contained HTML report.

One file that opens anywhere, offline, years later: CSS and SVG figures are inline and the page
references nothing outside itself. The page is rendered from the same dictionary as
``report.json``, so the two cannot disagree. Jinja2 autoescaping is on: every string that came
from the user (dataset, class, attack names, descriptions, warnings) is escaped; only the SVG
that :mod:`miaudit.report.plots` generated is marked safe, and matplotlib escapes the user text
inside it.
"""

from __future__ import annotations

import functools
import math

import jinja2
from markupsafe import Markup

from miaudit.evaluation.results import AuditResult
from miaudit.report.json_report import build_report_dict
from miaudit.report.plots import plot_per_class, plot_roc, plot_score_histograms

__all__ = ["render_html"]

_RISK_COLOURS = {"low": "#1e8449", "medium": "#b9770e", "high": "#b03a2e"}
_MAX_LISTED = 20


@functools.cache
def _environment() -> jinja2.Environment:
    """Jinja2 environment, built on first use so importing miaudit stays cheap."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("miaudit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["plain"] = _plain
    return env


def _num(value: object, digits: int = 3) -> str:
    """A number for a table cell; missing or NaN figures read ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.2g}"
    return str(value)


def _pct(fpr_key: str) -> str:
    """``"0.001"`` -> ``"0.1%"``: FPR targets read more easily as percentages."""
    return f"{float(fpr_key) * 100:g}%"


def _plain(value: object) -> str:
    """A JSON value in one short line for the summary tables (long lists are cut)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        shown = ", ".join(_plain(v) for v in value[:_MAX_LISTED])
        if len(value) > _MAX_LISTED:
            shown += f", … ({len(value) - _MAX_LISTED} more)"
        return f"[{shown}]"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return str(value)


def _per_class_rows(report: dict) -> list[dict]:
    """One row per class: counts, then the AUC of each attack (``None`` where it has none)."""
    rows: dict[int, dict] = {}
    for i, attack in enumerate(report["attacks"]):
        for cls in attack["per_class"]:
            row = rows.setdefault(
                cls["class_index"],
                {
                    "name": cls["class_name"],
                    "n_members": cls["n_members"],
                    "n_nonmembers": cls["n_nonmembers"],
                    "auc": [None] * len(report["attacks"]),
                    "pr": [None] * len(report["attacks"]),
                    "notes": [],
                },
            )
            row["auc"][i] = cls["auc"]
            row["pr"][i] = (cls.get("precision"), cls.get("recall"))
            if cls["note"] and cls["note"] not in row["notes"]:
                row["notes"].append(cls["note"])
    return [rows[k] for k in sorted(rows)]


def render_html(result: AuditResult, report: dict | None = None) -> str:
    """Render the audit as one self-contained HTML page.

    Parameters
    ----------
    result : AuditResult
        The audit; its ROC curves and scores feed the figures.
    report : dict, optional
        The output of :func:`build_report_dict` for ``result``, when the caller already
        built it (the writer does, to render JSON and HTML from one dictionary).

    Returns
    -------
    str
        The HTML document. It contains no URL of any external resource.
    """
    if report is None:
        report = build_report_dict(result)
    fpr_keys = sorted({k for a in report["attacks"] for k in a["tpr_at_fpr"]}, key=float)
    per_class_svg = plot_per_class(result)
    context = {
        "r": report,
        "fpr_keys": fpr_keys,
        "risk_colour": _RISK_COLOURS[report["verdict"]["risk"]],
        "roc_svg": Markup(plot_roc(result)),
        "hist_svg": Markup(plot_score_histograms(result)),
        "per_class_svg": Markup(per_class_svg) if per_class_svg is not None else None,
        "per_class_rows": _per_class_rows(report),
        "has_unresolvable": any(
            not iv["resolvable"]
            for a in report["attacks"]
            for iv in a["tpr_at_fpr_interval"].values()
        ),
    }
    return _environment().get_template("report.html").render(context)
