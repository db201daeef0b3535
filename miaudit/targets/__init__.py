"""Target adapters with an explicit access level."""

from miaudit.targets.adapters import (
    AccessLevel,
    CallableTarget,
    LabelOnlyTarget,
    PrecomputedTarget,
    SklearnTarget,
    Target,
    TorchTarget,
    as_target,
    require_access,
)

__all__ = [
    "AccessLevel",
    "CallableTarget",
    "LabelOnlyTarget",
    "PrecomputedTarget",
    "SklearnTarget",
    "Target",
    "TorchTarget",
    "as_target",
    "require_access",
]
