"""The data shadow models train on, as Shokri et al. (S&P 2017, §V-C) vary it.

``real``: the attacker's population records. ``noisy``: the same records with a fraction
of features flipped (binary) or replaced. ``statistics``: records drawn feature by feature
from the population's marginals. ``synthetic``: records found by hill climbing on the
target's answers (their Algorithm 1), for an attacker with no data at all. The last three
need tabular records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.targets.adapters import Target

SHADOW_DATA = ("real", "noisy", "statistics", "synthetic")


def shadow_training_data(
    source: str,
    target: Target,
    dataset: Dataset,
    population: np.ndarray,
    *,
    noise: float = 0.1,
    synthesis: dict[str, Any] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Dataset, np.ndarray, dict]:
    """The data set and indices shadow models draw from, and facts for the report.
    ``progress(found, wanted)`` follows model-based synthesis, the one slow source."""
    if source not in SHADOW_DATA:
        raise InvalidAuditInput(f"shadow_data must be one of {list(SHADOW_DATA)}, got {source!r}")
    if source == "real":
        if population.size == 0:
            raise InvalidAuditInput(
                "the shadow attack on real data needs population records (split.population)"
            )
        return dataset, population, {"shadow_data": "real", "records": int(population.size)}
    _require_tabular(source, dataset)
    from miaudit.data import synthesis as syn

    x_pop = dataset.x[population]
    binary = _is_binary(dataset)
    if source == "noisy":
        made = syn.synthesize_noisy(
            x_pop,
            noise,
            labels=dataset.y[population],
            feature_kind="binary" if binary else "continuous",
            seed=seed,
        )
    elif source == "statistics":
        made = syn.synthesize_statistics(
            population.size, records=x_pop, labels=dataset.y[population], seed=seed
        )
    else:
        per_class, options = _synthesis_options(
            dataset, synthesis, max(1, population.size // dataset.n_classes)
        )
        try:
            made = syn.synthesize_model_based(
                target,
                dataset.x.shape[1],
                list(range(dataset.n_classes)),
                int(per_class),
                seed=seed,
                progress=progress,
                **options,
            )
        except TypeError as error:
            raise InvalidAuditInput(f"synthesis options: {error}") from None
    shadow_set = made.as_dataset(dataset.n_classes, name=f"{dataset.name} ({source})")
    info = {"shadow_data": source, "records": int(shadow_set.n_records)}
    if source == "noisy":
        info["noise"] = noise
    report = made.report
    info["target_queries"] = int(report.n_queries)
    info["records_per_class"] = {str(c): int(n) for c, n in report.produced_per_class.items()}
    return shadow_set, np.arange(shadow_set.n_records), info


def check_shadow_source(
    source: str, dataset: Dataset, synthesis: dict[str, Any] | None, seed: int
) -> None:
    """Raise, before any model is trained, when shadow data of ``source`` cannot be made
    from ``dataset``: what :func:`shadow_training_data` would refuse later (a non-real
    source on images, model-based search options the search rejects)."""
    if source == "real":
        return
    _require_tabular(source, dataset)
    if source == "synthetic":
        from miaudit.data.synthesis import check_model_based_options
        from miaudit.validation import is_int

        per_class, options = _synthesis_options(dataset, synthesis, 1)
        if not is_int(per_class) or per_class < 1:
            raise InvalidAuditInput(
                f"synthesis.records_per_class must be a positive int, got {per_class!r}"
            )
        check_model_based_options(dataset.x.shape[1], options, seed=seed)


def _require_tabular(source: str, dataset: Dataset) -> None:
    if dataset.is_image:
        raise InvalidAuditInput(
            f"shadow_data={source!r} works on tabular records; {dataset.name!r} holds images"
        )


def _is_binary(dataset: Dataset) -> bool:
    return bool(np.isin(dataset.x, (0.0, 1.0)).all())


def _synthesis_options(
    dataset: Dataset, synthesis: dict[str, Any] | None, default_per_class: int
) -> tuple[Any, dict[str, Any]]:
    """``records_per_class`` and the model-based search's options, ``feature_kind``
    defaulting to what the data set's features are."""
    options = dict(synthesis or {})
    per_class = options.pop("records_per_class", default_per_class)
    options.setdefault("feature_kind", "binary" if _is_binary(dataset) else "continuous")
    return per_class, options
