"""Optional MLflow logging of an audit: ``--mlflow`` or ``tracking: mlflow`` in the file.

One MLflow run per audit: the audit's parameters (data set, split sizes, target, access,
attacks, evaluation settings), every attack's figures as metrics (``<attack>.auc``,
``<attack>.tpr_at_fpr_0.01``, ``<attack>.epsilon_lower_bound``, ...), the verdict as tags,
and ``report.html`` and ``report.json`` as artifacts. MLflow (the ``mlflow`` extra, or
``mlflow-skinny``) is imported only when tracking is asked for.

The tracking URI is MLflow's own default (``MLFLOW_TRACKING_URI``, else ``./mlruns``)
unless given. MLflow 3 keeps its file store in maintenance mode behind
``MLFLOW_ALLOW_FILE_STORE``; an explicit ``file:`` URI is the user's choice of that store,
so it is allowed for this run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from miaudit.errors import InvalidAuditInput

__all__ = ["log_to_mlflow"]


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise InvalidAuditInput(
            "MLflow tracking needs mlflow: pip install 'miaudit[mlflow]'"
        ) from None
    return mlflow


def _params(report: dict) -> dict[str, str]:
    target, data, settings = report["target"], report["data"], report["settings"]
    params = {
        "dataset": data.get("dataset"),
        "n_members": data.get("n_members"),
        "n_nonmembers": data.get("n_nonmembers"),
        "n_population": data.get("n_population"),
        "target": target.get("description"),
        "access": target.get("access"),
        "architecture": target.get("architecture"),
        "attacks": ", ".join(a["name"] for a in report["attacks"]),
        "fprs": settings.get("fprs"),
        "delta": settings.get("delta"),
        "confidence": settings.get("confidence"),
        "seed": settings.get("seed"),
        "miaudit_version": report.get("miaudit_version"),
    }
    # MLflow caps a parameter at 6,000 characters; none of these comes close but a
    # description could.
    return {k: str(v)[:500] for k, v in params.items() if v is not None}


def _metric_name(text: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . / :`` and spaces."""
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in text)


def _metrics(report: dict) -> dict[str, float]:
    metrics: dict[str, float] = {
        "target.train_accuracy": report["target"].get("train_accuracy"),
        "target.test_accuracy": report["target"].get("test_accuracy"),
    }
    for attack in report["attacks"]:
        name = _metric_name(attack["name"])
        for key in ("auc", "accuracy", "advantage", "epsilon_lower_bound", "seconds"):
            metrics[f"{name}.{key}"] = attack.get(key)
        for fpr, tpr in attack["tpr_at_fpr"].items():
            metrics[f"{name}.tpr_at_fpr_{fpr}"] = tpr
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def log_to_mlflow(
    report: dict,
    paths: dict[str, Path],
    *,
    tracking_uri: str | None = None,
    experiment: str = "miaudit",
    run_name: str | None = None,
) -> str:
    """Log one audit (its ``report.json`` dictionary and written files) as an MLflow run;
    return the run id."""
    mlflow = _mlflow()
    if tracking_uri is not None:
        if tracking_uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    verdict = report["verdict"]
    name = run_name or f"{report['data'].get('dataset')} audit"
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_params(_params(report))
        mlflow.log_metrics(_metrics(report))
        mlflow.set_tags({"miaudit.verdict": verdict["risk"], "miaudit.reason": verdict["reason"]})
        for role in ("html", "json"):
            if role in paths:
                mlflow.log_artifact(str(paths[role]))
        return run.info.run_id
