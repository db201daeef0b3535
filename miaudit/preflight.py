"""The checks of an audit file that need neither its data nor any model: run them first.

A configuration error must end the run within seconds of its start, whatever the data set
(CIFAR-10 takes 10 s just to decompress) and long before a target trains. Everything here
is importable without PyTorch: the attack registry builds and checks every attack entry
(names, parameters, labels), their declared requirements meet the target's access level
and the recipes the file gives, and the schema has already built the evaluation settings.
When the file gives every size of the split (members, non-members and population), the
reference design is checked here too (a population too small for RMIA or for references
of the target's size). The checks that need the data (the population when it is "all the
rest", query sets, the architecture against the records' shape) follow in
:func:`miaudit.audit.plan_audit`, still before any training.
"""

from __future__ import annotations

from pathlib import Path

from miaudit.attacks.registry import build_attacks, check_requirements, default_attacks
from miaudit.config import AuditConfig
from miaudit.data.split import check_split_file
from miaudit.errors import InvalidAuditInput
from miaudit.references import check_population, design_sizes
from miaudit.targets.adapters import AccessLevel
from miaudit.validation import check_readable_file, check_writable_dir

__all__ = ["preflight", "target_access"]


def _model_access(config: AuditConfig) -> AccessLevel:
    section = config.target
    if section.access != "auto":
        return AccessLevel.parse(section.access)
    if section.recipe is not None:
        return AccessLevel.WHITE_BOX
    if section.sklearn is not None:
        return AccessLevel.PROBABILITIES
    torch_file = Path(section.model_file).suffix.lower() in (".pt", ".pth")
    return AccessLevel.WHITE_BOX if torch_file else AccessLevel.PROBABILITIES


def target_access(config: AuditConfig) -> AccessLevel:
    """The access level the target will be declared with, known before it exists: the
    model's, lowered by its output defenses (probabilities, or labels only)."""
    access = _model_access(config)
    for defense in config.target.defenses:
        if defense.name == "label_only":
            access = AccessLevel.LABEL_ONLY
        else:
            if access < AccessLevel.PROBABILITIES:
                raise InvalidAuditInput(
                    f"target.defenses: {defense.name!r} transforms probabilities, but the "
                    f"answers before it are {access.label}; put label_only last"
                )
            access = min(access, AccessLevel.PROBABILITIES)
    return access


def preflight(config: AuditConfig) -> list:
    """Raise :class:`~miaudit.errors.InvalidAuditInput` for any attack entry the audit
    cannot run, before the data set is loaded or a model is built; return the attacks
    (:class:`~miaudit.attacks.registry.AttackSpec`) as built."""
    access = target_access(config)
    entries = config.attack_entries()
    specs = build_attacks(entries if entries is not None else default_attacks(access))
    has_recipe = (
        config.target.recipe is not None
        or config.target.sklearn is not None
        or (config.references is not None and config.references.recipe is not None)
    )
    check_requirements(specs, access, has_recipe=has_recipe)
    split = config.split
    uses_references = any(s.requirements.references for s in specs)
    if (
        uses_references
        and has_recipe
        and split.indices_file is None
        and split.population is not None
    ):
        # The split's sizes are all in the file: the reference design can be checked now.
        references = config.references
        sizes = design_sizes(
            split.members,
            split.nonmembers,
            split.population,
            train_size=None if references is None else references.train_size,
            population_size=None if references is None else references.population_size,
        )
        check_population(specs, sizes, split.population)
    if config.references is not None and config.references.cache_dir is not None:
        check_writable_dir(config.references.cache_dir, "references.cache_dir")
    if config.target.model_file is not None:
        if split.indices_file is None:
            raise InvalidAuditInput(
                "split: a target loaded from target.model_file was trained elsewhere, so "
                "miaudit cannot draw its members; give split.indices_file (an .npz with the "
                "'members' and 'nonmembers' record indices of that training run)"
            )
        check_readable_file(config.target.model_file, "target.model_file")
    if split.indices_file is not None:
        check_split_file(split.indices_file)
    return specs
