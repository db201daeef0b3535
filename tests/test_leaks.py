"""Which records leak most: the ranked table in report.json and HTML, and the CSV export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from report_fixtures import make_result

from miaudit.cli import main
from miaudit.report import build_report_dict
from miaudit.report.leaks import leaky_records, write_per_record_csv


def test_the_ranking_follows_the_strongest_calibrated_attack_and_counts_flags(tmp_path):
    result = make_result()
    table = leaky_records(result, top=5)
    names = {a.name: a for a in result.attacks}
    calibrated = [a for a in result.attacks if a.family == "reference"]
    expected = max(calibrated or result.attacks, key=lambda a: a.auc).name
    assert table["ranked_by"] == expected
    scores = result.scores[expected]
    top = np.argsort(-scores, kind="stable")[:5]
    assert [r["score"] for r in table["records"]] == pytest.approx(scores[top].tolist())
    # flagged_by counts the attacks whose score reaches their own 1 % FPR threshold.
    for row, i in zip(table["records"], top, strict=True):
        count = sum(
            int(result.scores[n][i] >= a.tpr_at_fpr[0.01].threshold)
            for n, a in names.items()
            if a.tpr_at_fpr[0.01].resolvable
        )
        assert row["flagged_by"] == count
    report = build_report_dict(result)
    assert report["leaky_records"]["records"][0] == table["records"][0]
    path = write_per_record_csv(result, tmp_path / "records.csv")
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["record", "class", "member"] and len(rows) == scores.size + 1
    column = rows[0].index(expected)
    assert float(rows[1 + int(top[0])][column]) == pytest.approx(scores[top[0]])


def test_cli_writes_the_table_and_the_csv_without_record_values(tmp_path, capsys):
    config = {
        "dataset": "digits",
        "split": {"members": 150, "nonmembers": 150, "seed": 0},
        "target": {"sklearn": {"estimator": "LogisticRegression", "params": {"max_iter": 500}}},
        "attacks": ["loss", "gap"],
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    csv_path = tmp_path / "records.csv"
    code = main(
        ["audit", str(path), "--out", str(tmp_path / "o"), "--per-record-csv", str(csv_path)]
    )
    assert code == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    rows = report["leaky_records"]["records"]
    assert len(rows) == 20 and set(rows[0]) == {
        "record",
        "class",
        "class_name",
        "member",
        "score",
        "flagged_by",
    }
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Records that leak most" in html
    with csv_path.open() as fh:
        assert sum(1 for _ in fh) == 301
    assert (
        main(["audit", str(path), "--out", str(tmp_path / "p"), "--per-record-csv", str(tmp_path)])
        == 2
    )
    assert "--per-record-csv" in capsys.readouterr().err
