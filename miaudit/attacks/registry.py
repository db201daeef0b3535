"""Attack names as written in YAML files and the Python API, and how each is built.

An attack entry is a name plus parameters, e.g. ``{name: rmia, num_references: 4,
gamma: 2}``. Parameters go to the attack's constructor, except the audit-level ones
(``num_references``, ``label``); unknown parameters are errors listing the allowed ones.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from miaudit.attacks.metric import METRIC_ATTACKS, MetricAttack
from miaudit.errors import InvalidAuditInput

#: name -> class name (exported by ``miaudit.attacks``) of the non-metric attacks.
_CLASSES: dict[str, str] = {
    "lira": "LiRA",
    "rmia": "RMIA",
    "attack_r": "AttackR",
    "classifier": "ClassifierAttack",
    "shadow": "ShadowModelAttack",
}

#: Parameters the audit consumes itself rather than the attack's constructor.
AUDIT_PARAMS = ("label", "num_references", "shadow_data", "noise", "synthesis")
_SHADOW_ONLY = ("shadow_data", "noise", "synthesis")

#: Reference models an attack uses when the entry does not say.
DEFAULT_NUM_REFERENCES = 4


@dataclass(frozen=True)
class AttackSpec:
    """One attack to run: its label in the report, the configured estimator, and how many
    reference models it may use (reference family only)."""

    label: str
    attack: Any
    num_references: int | None = None
    params: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return getattr(self.attack, "family", "custom")


def known_attacks() -> list[str]:
    return [*METRIC_ATTACKS, *_CLASSES]


def _attack_class(name: str):
    return getattr(importlib.import_module("miaudit.attacks"), _CLASSES[name])


def _default_label(name: str, attack: Any, params: dict) -> str:
    if name in ("lira", "rmia"):
        label = f"{name}_{'online' if attack.online else 'offline'}"
        if getattr(attack, "fixed_variance", "auto") is True:
            label += "_fixed_variance"
        return label
    if name == "classifier":
        return f"classifier_{attack.method}"
    if name == "shadow":
        return f"shadow_{params.get('shadow_data', 'real')}"
    return name


def build_attack(name: str, params: dict | None = None) -> AttackSpec:
    """Build the attack ``name`` with ``params``; errors name the attack and parameter."""
    params = dict(params or {})
    if name in METRIC_ATTACKS:
        extra = sorted(set(params) - {"label"})
        if extra:
            raise InvalidAuditInput(
                f"attack {name!r} takes no parameters besides 'label', got {extra}"
            )
        return AttackSpec(params.get("label", name), MetricAttack(metric=name), None, params)
    if name not in _CLASSES:
        raise InvalidAuditInput(f"unknown attack {name!r}; available: {', '.join(known_attacks())}")
    cls = _attack_class(name)
    allowed = sorted(cls().get_params(deep=False))
    own = {k: v for k, v in params.items() if k not in AUDIT_PARAMS}
    unknown = sorted(set(own) - set(allowed))
    if unknown:
        raise InvalidAuditInput(
            f"attack {name!r}: unknown parameter(s) {unknown}; allowed: {[*allowed, *AUDIT_PARAMS]}"
        )
    attack = cls(**own)
    num_refs = None
    if getattr(attack, "family", "") == "reference":
        num_refs = params.get("num_references", DEFAULT_NUM_REFERENCES)
        if not isinstance(num_refs, int) or isinstance(num_refs, bool) or num_refs < 1:
            raise InvalidAuditInput(
                f"attack {name!r}: num_references must be a positive integer, got {num_refs!r}"
            )
    elif "num_references" in params:
        raise InvalidAuditInput(f"attack {name!r} uses no reference models (num_references)")
    if name != "shadow" and (misplaced := sorted(set(params) & set(_SHADOW_ONLY))):
        raise InvalidAuditInput(f"attack {name!r}: {misplaced} apply to the shadow attack only")
    label = params.get("label") or _default_label(name, attack, params)
    return AttackSpec(str(label), attack, num_refs, params)


def as_attack_spec(entry: Any) -> AttackSpec:
    """Accept a name, a ``{name: ..., **params}`` mapping, an AttackSpec or an estimator."""
    if isinstance(entry, AttackSpec):
        return entry
    if isinstance(entry, str):
        return build_attack(entry)
    if isinstance(entry, dict):
        if "name" not in entry:
            raise InvalidAuditInput(f"an attack entry needs a 'name', got {sorted(entry)}")
        params = {k: v for k, v in entry.items() if k != "name"}
        return build_attack(str(entry["name"]), params)
    if hasattr(entry, "fit") and hasattr(entry, "score"):
        label = getattr(entry, "metric", None) or type(entry).__name__
        refs = DEFAULT_NUM_REFERENCES if getattr(entry, "family", "") == "reference" else None
        return AttackSpec(str(label), entry, refs)
    raise InvalidAuditInput(
        f"an attack must be a name, a mapping with 'name', or an object with fit/score; "
        f"got {entry!r}"
    )
