"""Attack names as written in YAML files and the Python API, and how each is built.

An attack entry is a name plus parameters, e.g. ``{name: rmia, num_references: 4,
gamma: 2}``. Parameters go to the attack's constructor, except the audit-level ones
(``num_references``, ``label``); unknown parameters are errors listing the allowed ones,
and every parameter is checked (the attack's ``check_params``) when the entry is built,
so a bad entry fails before the audit trains anything.

Registering a new family is one line in :data:`ATTACK_CLASSES`: its name and
``"module:Class"`` of a class that follows :class:`~miaudit.attacks.protocol.Attack`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from miaudit.attacks.metric import METRIC_ATTACKS, MetricAttack
from miaudit.attacks.protocol import Requirements
from miaudit.errors import AccessLevelError, InvalidAuditInput
from miaudit.targets.adapters import AccessLevel
from miaudit.validation import is_int

#: name -> ``"module:Class"`` of every attack family beyond the metric attacks.
ATTACK_CLASSES: dict[str, str] = {
    "lira": "miaudit.attacks.lira:LiRA",
    "rmia": "miaudit.attacks.rmia:RMIA",
    "attack_r": "miaudit.attacks.attack_r:AttackR",
    "classifier": "miaudit.attacks.classifier:ClassifierAttack",
    "shadow": "miaudit.attacks.shadow:ShadowModelAttack",
    "whitebox": "miaudit.attacks.whitebox:WhiteBoxAttack",
    "gradient_norm": "miaudit.attacks.whitebox:GradientNormAttack",
    "augmentation": "miaudit.attacks.label_only:AugmentationAttack",
    "boundary": "miaudit.attacks.label_only:BoundaryDistanceAttack",
}

#: Parameters the audit consumes itself rather than the attack's constructor.
AUDIT_PARAMS = ("label", "num_references")

#: Reference models an attack uses when the entry does not say.
DEFAULT_NUM_REFERENCES = 4


@dataclass(frozen=True)
class AttackSpec:
    """One attack to run: its label in the report, the configured estimator, and how many
    reference models it may use (attacks that need references only)."""

    label: str
    attack: Any
    num_references: int | None = None
    params: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return getattr(self.attack, "family", "custom")

    @property
    def requirements(self) -> Requirements:
        return requirements_of(self.attack)


def requirements_of(attack: Any) -> Requirements:
    """What ``attack`` declares, or, for an estimator that predates the protocol, its
    ``required_access`` alone."""
    needs = getattr(attack, "requirements", None)
    if isinstance(needs, Requirements):
        return needs
    return Requirements(access=getattr(attack, "required_access", Requirements().access))


def default_attacks(access: AccessLevel) -> list[str]:
    """Every metric attack the access level allows (all of them above label-only)."""
    return [name for name, spec in METRIC_ATTACKS.items() if spec[2] <= access]


def known_attacks() -> list[str]:
    return [*METRIC_ATTACKS, *ATTACK_CLASSES]


def attack_class(name: str) -> type:
    """The class registered under ``name`` (imported on first use)."""
    module, _, cls = ATTACK_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _check_num_references(name: str, attack: Any, params: dict) -> int | None:
    if not requirements_of(attack).references:
        if "num_references" in params:
            raise InvalidAuditInput(f"attack {name!r} uses no reference models (num_references)")
        return None
    value = params.get("num_references", DEFAULT_NUM_REFERENCES)
    if not is_int(value) or value < 1:
        raise InvalidAuditInput(
            f"attack {name!r}: num_references must be a positive integer, got {value!r}"
        )
    return int(value)


def _check_label(name: str, label: Any) -> str:
    if not isinstance(label, str) or not label.strip():
        raise InvalidAuditInput(f"attack {name!r}: label must be a non-empty string, got {label!r}")
    return label


def build_attack(name: str, params: dict | None = None) -> AttackSpec:
    """Build the attack ``name`` with ``params``; errors name the attack and parameter."""
    params = dict(params or {})
    if not isinstance(name, str):
        raise InvalidAuditInput(f"an attack name must be a string, got {name!r}")
    if name in METRIC_ATTACKS:
        extra = sorted(set(params) - {"label"})
        if extra:
            raise InvalidAuditInput(
                f"attack {name!r} takes no parameters besides 'label', got {extra}"
            )
        label = _check_label(name, params.get("label", name))
        return AttackSpec(label, MetricAttack(metric=name), None, params)
    if name not in ATTACK_CLASSES:
        raise InvalidAuditInput(f"unknown attack {name!r}; available: {', '.join(known_attacks())}")
    cls = attack_class(name)
    allowed = sorted(cls().get_params(deep=False))
    own = {k: v for k, v in params.items() if k not in AUDIT_PARAMS}
    unknown = sorted(set(own) - set(allowed))
    if unknown:
        raise InvalidAuditInput(
            f"attack {name!r}: unknown parameter(s) {unknown}; allowed: {[*allowed, *AUDIT_PARAMS]}"
        )
    attack = cls(**own)
    try:
        attack.check_params()
    except ValueError as error:  # InvalidAuditInput, or a plain ValueError of a user's attack
        raise InvalidAuditInput(f"attack {name!r}: {error}") from None
    num_refs = _check_num_references(name, attack, params)
    label = _check_label(name, params.get("label") or attack.default_label())
    return AttackSpec(label, attack, num_refs, params)


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
        return build_attack(entry["name"], params)
    if hasattr(entry, "fit") and hasattr(entry, "score"):
        if hasattr(entry, "check_params"):
            entry.check_params()
        named = getattr(entry, "default_label", None)
        label = getattr(entry, "metric", None) or (
            named() if callable(named) else type(entry).__name__
        )
        refs = DEFAULT_NUM_REFERENCES if requirements_of(entry).references else None
        return AttackSpec(str(label), entry, refs)
    raise InvalidAuditInput(
        f"an attack must be a name, a mapping with 'name', or an object with fit/score; "
        f"got {entry!r}"
    )


def build_attacks(entries: Any) -> list[AttackSpec]:
    """Every entry of an attack list as an :class:`AttackSpec`, labels checked unique.

    A single name or mapping is refused rather than iterated (``attacks="loss"`` would
    otherwise become the attacks ``l``, ``o``, ``s``, ``s``).
    """
    if isinstance(entries, str | dict | AttackSpec) or not hasattr(entries, "__iter__"):
        raise InvalidAuditInput(
            f"attacks must be a list of attack names or entries, got {entries!r}; "
            f"write attacks=[{entries!r}]"
        )
    specs = [as_attack_spec(entry) for entry in entries]
    if not specs:
        raise InvalidAuditInput("no attack to run: the attack list is empty")
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        raise InvalidAuditInput(
            f"attack labels must be unique, got {repeated} more than once; give repeated "
            "attacks a 'label'"
        )
    return specs


def check_requirements(
    specs: list[AttackSpec],
    access: AccessLevel,
    *,
    has_recipe: bool,
    target_description: str = "the target",
) -> None:
    """Refuse, before anything is trained, attacks the audit cannot serve: access above
    the target's declared level, or reference/shadow models without a recipe."""
    problems = []
    for spec in specs:
        needs = spec.requirements
        if access < needs.access:
            problems.append(
                f"attack {spec.label!r} needs {needs.access.label} access, but "
                f"{target_description} is declared {access.label}; declare a higher access "
                f"level or choose an attack that works with {access.label} access"
            )
    if problems:
        raise AccessLevelError("; ".join(problems))
    needs_recipe = [s.label for s in specs if s.requirements.needs_recipe]
    if needs_recipe and not has_recipe:
        raise InvalidAuditInput(
            f"attacks {needs_recipe} need reference models: give a reference recipe (YAML "
            "'references: {recipe: ...}', or references=ReferenceSetup(...))"
        )
