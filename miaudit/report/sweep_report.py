"""The sweep's report: ``sweep.json``, ``sweep.html`` with the privacy-utility plot, and one
full audit report per setting in its own folder.

The plot puts test accuracy against the strongest attack's TPR at 1 % FPR (with its
Clopper-Pearson interval) and against its AUC (with DeLong's), one point per setting: the
price of each defense in accuracy next to what it buys in privacy. Everything is escaped
(labels come from the user) and self-contained, like the audit report.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from miaudit import __version__
from miaudit.atomic import atomic_write
from miaudit.report.json_report import build_report_dict, to_jsonable
from miaudit.report.writer import write_report
from miaudit.sweep import SweepResult, sweep_table

__all__ = ["plot_privacy_utility", "write_sweep_report"]


def plot_privacy_utility(result: SweepResult) -> str:
    """An ``<svg>``: test accuracy (x) against the best TPR at 1 % FPR and the best AUC."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from miaudit.report.plots import _colour, _label, _to_svg

    fig = Figure(figsize=(9, 3.8))
    left, right = fig.subplots(1, 2)
    markers = "osD^v<>pPX*h"  # colours repeat after ten settings; markers tell them apart
    for i, row in enumerate(result.rows):
        colour, marker = _colour(i), markers[i % len(markers)]
        low, high = row.best_tpr_interval
        left.errorbar(
            row.test_accuracy,
            row.best_tpr_at_1pct,
            yerr=[[row.best_tpr_at_1pct - low], [high - row.best_tpr_at_1pct]],
            fmt=marker,
            color=colour,
            label=_label(row.label),
        )
        a_low, a_high = row.best_auc_interval
        right.errorbar(
            row.test_accuracy,
            row.best_auc,
            yerr=[[row.best_auc - a_low], [a_high - row.best_auc]],
            fmt=marker,
            color=colour,
        )
    left.set(xlabel="test accuracy", ylabel="best TPR at 1% FPR")
    right.set(xlabel="test accuracy", ylabel="best AUC")
    right.axhline(0.5, color="grey", lw=0.8, ls=":")
    left.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _to_svg(fig, "sweep")


def _slug(i: int, label: str) -> str:
    return f"{i + 1:02d}-" + (re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")[:40] or "setting")


def _html(result: SweepResult, svg: str, folders: list[str]) -> str:
    table = sweep_table(result.rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table[0])
    body = []
    for cells, folder in zip(table[1:], folders, strict=True):
        link = f'<a href="{html.escape(folder)}/report.html">{html.escape(cells[0])}</a>'
        rest = "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:])
        body.append(f"<tr><td>{link}</td>{rest}</tr>")
    skipped = [
        f"<li>{html.escape(r.label)}: {html.escape(', '.join(r.skipped_attacks))}</li>"
        for r in result.rows
        if r.skipped_attacks
    ]
    skipped_html = (
        "<h2>Attacks a setting's access level does not allow</h2><ul>" + "".join(skipped) + "</ul>"
        if skipped
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>miaudit defense sweep</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: .9em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Defenses and their price</h1>
<p>miaudit {html.escape(__version__)}: {len(result.rows)} settings, each a full audit (its
report is linked). The strongest attack of each setting is shown; ε lower is the best held-out
empirical bound, accountant ε the DP-SGD accountant's upper bound.</p>
<div class="scroll"><table><thead><tr>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table></div>
{svg}
{skipped_html}
</body></html>
"""


def write_sweep_report(result: SweepResult, out_dir: str | Path) -> dict[str, Path]:
    """Write each setting's audit report, then ``sweep.json`` and ``sweep.html``."""
    out = Path(out_dir).absolute()
    folders = [_slug(i, row.label) for i, row in enumerate(result.rows)]
    for audit, folder in zip(result.results, folders, strict=True):
        write_report(audit, out / folder)
    payload = {
        "miaudit_version": __version__,
        "seconds": result.seconds,
        "settings": [
            {**row.to_dict(), "report": f"{folder}/report.json"}
            for row, folder in zip(result.rows, folders, strict=True)
        ],
        "verdicts": [build_report_dict(r)["verdict"]["risk"] for r in result.results],
    }
    text = json.dumps(to_jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(out / "sweep.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    svg = plot_privacy_utility(result)
    page = _html(result, svg, folders)
    atomic_write(out / "sweep.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))
    standalone = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
        if 'xmlns="http://www.w3.org/2000/svg"' not in svg
        else svg
    )
    atomic_write(
        out / "privacy_utility.svg", lambda tmp: tmp.write_text(standalone, encoding="utf-8")
    )
    return {
        "json": out / "sweep.json",
        "html": out / "sweep.html",
        "plot": out / "privacy_utility.svg",
    }
