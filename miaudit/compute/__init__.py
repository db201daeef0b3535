"""Running many trainings: a reference-model pool over a content-addressed model cache.

* :class:`ReferencePool` trains reference models by a recipe on balanced, growth-stable
  random halves of the candidate records and queries them (and the target) in batches.
* :class:`ModelCache` stores every trained model under the sha256 of
  ``(recipe, data, training indices, seed)``, atomically, so a rerun, a larger pool or a
  second process never retrains what it has.
* :class:`QuerySet` lists the augmented views of a record each model is asked about.
"""

from miaudit.compute.cache import (
    CACHE_ENV,
    CachedModel,
    CacheWarning,
    ModelCache,
    cache_key,
    data_fingerprint,
    default_cache_dir,
    train_or_load,
)
from miaudit.compute.ensemble import ensemble_ineligibility, train_ensemble
from miaudit.compute.pool import (
    EVAL_SAMPLE,
    LeaveOneOut,
    PoolProgress,
    ReferencePool,
    observe_models,
    self_audit_size,
)
from miaudit.compute.queries import Query, QuerySet

__all__ = [
    "CACHE_ENV",
    "EVAL_SAMPLE",
    "CacheWarning",
    "CachedModel",
    "LeaveOneOut",
    "ModelCache",
    "PoolProgress",
    "Query",
    "QuerySet",
    "ReferencePool",
    "cache_key",
    "data_fingerprint",
    "default_cache_dir",
    "ensemble_ineligibility",
    "observe_models",
    "self_audit_size",
    "train_ensemble",
    "train_or_load",
]
