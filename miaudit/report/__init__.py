"""Reports of an audit: ``report.json`` (a contract), ``scores.npz``, HTML and terminal.

The report reads only :class:`~miaudit.evaluation.results.AuditResult`; it never reaches back
into attacks. Typical use::

    from miaudit.report import write_report, print_summary

    paths = write_report(result, "audit-out")   # report.json, scores.npz, report.html
    print_summary(result)                        # CLI only: the library itself never prints
"""

from __future__ import annotations

from miaudit.report.html_report import render_html
from miaudit.report.json_report import build_report_dict, write_scores_npz
from miaudit.report.plots import plot_per_class, plot_roc, plot_score_histograms
from miaudit.report.terminal import print_summary
from miaudit.report.verdict import decide_verdict
from miaudit.report.writer import write_report

__all__ = [
    "build_report_dict",
    "decide_verdict",
    "plot_per_class",
    "plot_roc",
    "plot_score_histograms",
    "print_summary",
    "render_html",
    "write_report",
    "write_scores_npz",
]
