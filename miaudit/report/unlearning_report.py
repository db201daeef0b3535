"""``unlearning.json`` and ``unlearning.html``: the deletion study's table, escaped and
self-contained like the audit report."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from miaudit import __version__
from miaudit.atomic import atomic_write
from miaudit.report.json_report import to_jsonable
from miaudit.unlearn_study import UnlearningResult, unlearning_table

__all__ = ["write_unlearning_report"]


def _save_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def write_unlearning_report(result: UnlearningResult, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "miaudit_version": __version__,
        "target": result.target,
        "seconds": result.seconds,
        "rows": [r.to_dict() for r in result.rows],
        "question": "after unlearning, are deleted records distinguishable from records no "
        "model saw? AUC of deleted against never-seen records (0.5 when forgotten)",
    }
    # Per-record scores stay out of the JSON (as in an audit's scores.npz): for row i,
    # "row{i}_deleted" holds the deleted records' indices and "row{i}_{attack}" their
    # scores on the unlearned model (higher = looks more like a member).
    arrays = {}
    for i, row in enumerate(result.rows):
        arrays[f"row{i}_deleted"] = np.asarray(row.deleted, np.int64)
        for attack, scores in row.scores_after.items():
            arrays[f"row{i}_{attack}"] = np.asarray(scores, np.float64)
    atomic_write(out / "unlearning_scores.npz", lambda tmp: _save_npz(tmp, arrays))
    payload["scores_file"] = "unlearning_scores.npz"
    text = json.dumps(to_jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write(out / "unlearning.json", lambda tmp: tmp.write_text(text + "\n", "utf-8"))
    table = unlearning_table(result.rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table[1:]
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>miaudit unlearning study</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }}
.scroll {{ overflow-x: auto; }} table {{ border-collapse: collapse; font-size: .9em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }}</style>
</head><body><h1>Does deleting a record really remove it?</h1>
<p>miaudit {html.escape(__version__)}. AUC of the deleted records against records no model
saw (0.5 when they are forgotten), on the model before and after unlearning, with the
two-sample p-value; seconds of each method against full retraining.</p>
<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>
</body></html>
"""
    atomic_write(out / "unlearning.html", lambda tmp: tmp.write_text(page, "utf-8"))
    return {
        "json": out / "unlearning.json",
        "scores": out / "unlearning_scores.npz",
        "html": out / "unlearning.html",
    }
