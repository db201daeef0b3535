"""Figures of the HTML report, rendered as inline SVG strings.

Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no GUI
backend is touched, nothing is registered globally (so nothing leaks if a caller forgets to
close), and importing miaudit does not change matplotlib's state. SVG keeps the report one
self-contained, zoomable file; text is written as SVG ``<text>`` (``svg.fonttype = none``),
which matplotlib XML-escapes, so attack and class names cannot inject markup.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.figure import Figure

from miaudit.evaluation.results import AttackEvaluation, AuditResult

__all__ = ["MAX_CLASS_BARS", "plot_per_class", "plot_roc", "plot_score_histograms"]

#: Above this many (class, attack) bars the per-class chart shows only the strongest attack.
MAX_CLASS_BARS = 60

_MEMBER_COLOUR = "#c0392b"
_NONMEMBER_COLOUR = "#2c7fb8"


def _colour(i: int) -> str:
    """Colour of the i-th attack, the same in every figure of a report."""
    return matplotlib.colormaps["tab10"](i % 10)


def _label(text: str) -> str:
    """Protect user text from matplotlib's mathtext: ``$`` would start a formula."""
    return str(text).replace("$", r"\$")


def _to_svg(fig: Figure, prefix: str) -> str:
    """Serialise ``fig`` to an SVG fragment fit for inlining in HTML.

    The XML declaration and doctype are stripped (they are invalid inside HTML), metadata is
    dropped, and every ``id`` is prefixed with ``prefix`` so several figures on one page do
    not define the same ids (matplotlib names them ``figure_1``, ``axes_1``, ... in each).
    """
    rc = {"svg.fonttype": "none", "svg.hashsalt": prefix}
    buf = io.StringIO()
    with matplotlib.rc_context(rc):
        fig.savefig(
            buf,
            format="svg",
            bbox_inches="tight",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    svg = re.sub(r'href="#', f'href="#{prefix}-', svg)
    svg = svg.replace("url(#", f"url(#{prefix}-")
    return svg


def plot_roc(result: AuditResult) -> str:
    """ROC curves of every attack on log-log axes, with the chance diagonal.

    Log axes show the low-FPR region where a membership attack matters (Carlini et al.,
    S&P 2022); on linear axes every attack looks like the diagonal there. Rates are clipped
    to at least 1 / n (the smallest non-zero rate the audit can measure) so that zeros stay
    on the plot, and the FPR targets of the audit are marked.

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    attacks = result.attacks
    n_non = max(1, min((a.n_nonmembers for a in attacks), default=1))
    n_mem = max(1, min((a.n_members for a in attacks), default=1))
    floor_x, floor_y = 1.0 / n_non, 1.0 / n_mem
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    handles, labels = [], []
    fprs = sorted({float(f) for a in attacks for f in a.tpr_at_fpr})
    for fpr in fprs:
        if fpr >= floor_x:
            ax.axvline(fpr, color="#bbbbbb", lw=0.8, ls=":", zorder=0)
    lo = min(floor_x, floor_y)
    (chance,) = ax.plot([lo, 1.0], [lo, 1.0], color="#888888", ls="--", lw=1)
    for i, attack in enumerate(attacks):
        x = np.clip(np.asarray(attack.roc_fpr, dtype=float), floor_x, 1.0)
        y = np.clip(np.asarray(attack.roc_tpr, dtype=float), floor_y, 1.0)
        (line,) = ax.plot(x, y, color=_colour(i), lw=1.6)
        handles.append(line)
        auc = "n/a" if math.isnan(attack.auc) else f"{attack.auc:.3f}"
        labels.append(_label(f"{attack.name} (AUC {auc})"))
    handles.append(chance)
    labels.append("chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor_x, 1.0)
    ax.set_ylim(floor_y, 1.0)
    ax.set_xlabel("false positive rate (non-members called members)")
    ax.set_ylabel("true positive rate (members found)")
    ax.grid(True, which="major", color="#eeeeee", lw=0.6)
    # Explicit labels: matplotlib drops automatic legend labels that start with "_".
    ax.legend(handles, labels, loc="lower right", fontsize=8, frameon=False)
    return _to_svg(fig, "roc")


def plot_score_histograms(result: AuditResult) -> str:
    """Member and non-member score histograms, one small panel per attack.

    Densities, not counts, so unequal numbers of members and non-members still compare by
    shape; each panel has its own bins because attacks' scores live on different scales.
    Non-finite scores cannot be binned; how many were left out is written in the title.
    """
    attacks = result.attacks
    is_member = np.asarray(result.is_member, dtype=bool)
    n = max(1, len(attacks))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.5 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(attacks) :]:
        ax.set_visible(False)
    for ax, attack in zip(axes.flat, attacks, strict=False):
        scores = np.asarray(result.scores[attack.name], dtype=float)
        finite = np.isfinite(scores)
        title = attack.name
        if not finite.all():
            title += f" ({int((~finite).sum())} non-finite left out)"
        ax.set_title(_label(title), fontsize=9)
        kept = scores[finite]
        if kept.size == 0:
            ax.text(0.5, 0.5, "no finite scores", ha="center", va="center")
            continue
        low, high = float(kept.min()), float(kept.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        bins = np.linspace(low, high, 41)
        for mask, colour in ((is_member, _MEMBER_COLOUR), (~is_member, _NONMEMBER_COLOUR)):
            values = scores[mask & finite]
            if values.size:
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    histtype="stepfilled",
                    alpha=0.45,
                    color=colour,
                    edgecolor=colour,
                    lw=0.8,
                )
        ax.set_xlabel("score (higher = more member-like)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.legend(
        handles=[
            matplotlib.patches.Patch(color=_MEMBER_COLOUR, alpha=0.6),
            matplotlib.patches.Patch(color=_NONMEMBER_COLOUR, alpha=0.6),
        ],
        labels=["members", "non-members"],
        loc="outside upper center",
        ncols=2,
        frameon=False,
        fontsize=8,
    )
    return _to_svg(fig, "hist")


def _strongest(attacks: Sequence[AttackEvaluation]) -> AttackEvaluation:
    return max(attacks, key=lambda a: -math.inf if math.isnan(a.auc) else a.auc)


def plot_per_class(result: AuditResult) -> str | None:
    """Per-class AUC as grouped bars, one group per class and one bar per attack.

    With many classes only the strongest attack (highest overall AUC) is drawn, so the
    chart stays readable; the title says so. Classes without an AUC (no members or no
    non-members) get no bar and an "n/a" mark rather than disappearing.

    Returns
    -------
    str or None
        An ``<svg>`` element, or ``None`` when no attack has per-class results.
    """
    attacks = [a for a in result.attacks if a.per_class]
    if not attacks:
        return None
    classes: dict[int, str] = {}
    for attack in attacks:
        for cls in attack.per_class:
            classes.setdefault(cls.class_index, cls.class_name)
    order = sorted(classes)
    title = "AUC per class"
    if len(order) * len(attacks) > MAX_CLASS_BARS and len(attacks) > 1:
        strongest = _strongest(attacks)
        attacks = [strongest]
        title = f"AUC per class, strongest attack only ({strongest.name})"
    colours = {a.name: _colour(i) for i, a in enumerate(result.attacks)}
    position = {c: i for i, c in enumerate(order)}
    width = 0.8 / len(attacks)
    fig = Figure(figsize=(min(14.0, max(5.0, 0.28 * len(order) * len(attacks) + 2)), 3.6))
    ax = fig.add_subplot()
    missing_x: list[float] = []
    bars = []
    for j, attack in enumerate(attacks):
        offset = (j - (len(attacks) - 1) / 2) * width
        xs, heights = [], []
        for cls in attack.per_class:
            x = position[cls.class_index] + offset
            if cls.auc is None or math.isnan(cls.auc):
                missing_x.append(x)
            else:
                xs.append(x)
                heights.append(cls.auc)
        bars.append(ax.bar(xs, heights, width=width, color=colours[attack.name]))
    for x in missing_x:
        ax.text(x, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=6)
    ax.axhline(0.5, color="#888888", ls="--", lw=1)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("AUC (0.5 = chance)")
    ax.set_xticks(range(len(order)))
    many = len(order) > 12
    ax.set_xticklabels(
        [_label(classes[c]) for c in order],
        rotation=90 if many else 0,
        fontsize=6 if len(order) > 30 else 8,
    )
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_title(_label(title), fontsize=10)
    if len(attacks) > 1:
        ax.legend(
            bars,
            [_label(a.name) for a in attacks],
            fontsize=7,
            frameon=False,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    return _to_svg(fig, "perclass")
