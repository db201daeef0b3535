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
from miaudit.config import SKLEARN_MODELS, AuditConfig
from miaudit.data.split import check_split_file
from miaudit.errors import InvalidAuditInput
from miaudit.references import check_population, design_sizes
from miaudit.targets.adapters import OUTPUT_ACCESS, AccessLevel
from miaudit.validation import check_readable_file, check_writable_dir, is_torchscript_file

__all__ = ["preflight", "target_access"]


def _model_access(config: AuditConfig) -> AccessLevel:
    section = config.target
    if section.access != "auto":
        return AccessLevel.parse(section.access)
    if section.recipe is not None and section.recipe.kind == "python":
        # What the user's function returns is known once it ran: a network, a classifier
        # or a callable. Probabilities every form gives; declare more (access: white_box
        # for a network) to run attacks that need it.
        return AccessLevel.PROBABILITIES
    if section.recipe is not None:
        return AccessLevel.WHITE_BOX
    if section.sklearn is not None:
        return AccessLevel.PROBABILITIES
    if section.http is not None:
        return OUTPUT_ACCESS[section.http.output]
    if section.predictions_file is not None:
        return OUTPUT_ACCESS[predictions_kind(section.predictions_file, section.output)]
    suffix = Path(section.model_file).suffix.lower()
    if suffix == ".onnx":  # ``auto``: logits at most; loading the graph decides
        return OUTPUT_ACCESS["probabilities" if section.output == "probabilities" else "logits"]
    if is_torchscript_file(section.model_file):
        return AccessLevel.LOGITS  # TorchScript has no torch.func gradients
    torch_file = suffix in (".pt", ".pth", ".pt2")
    return AccessLevel.WHITE_BOX if torch_file else AccessLevel.PROBABILITIES


#: Arrays a predictions file may hold, by what they are.
PREDICTION_KEYS = ("logits", "probabilities", "labels")


def predictions_kind(path: Path, output: str) -> str:
    """Which of ``logits``, ``probabilities``, ``labels`` a predictions file holds: the one
    ``output`` names, or (``auto``) the only one of them in the file."""
    import numpy as np

    check_readable_file(path, "target.predictions_file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
    except (OSError, ValueError) as error:
        raise InvalidAuditInput(
            f"target.predictions_file {str(path)!r}: not a readable .npz file ({error})"
        ) from None
    present = [k for k in PREDICTION_KEYS if k in keys]
    if output != "auto":
        if output not in keys:
            raise InvalidAuditInput(
                f"target.predictions_file {str(path)!r} has no array {output!r} "
                f"(it has {sorted(keys)})"
            )
        return output
    if len(present) != 1:
        raise InvalidAuditInput(
            f"target.predictions_file {str(path)!r} must hold exactly one of "
            f"{', '.join(PREDICTION_KEYS)} (it has {sorted(keys)}); or say which with "
            "target.output"
        )
    return present[0]


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


#: Model-file suffixes whose loading can run code: opened only with ``--trust-model-code``.
PROGRAM_SUFFIXES = {
    ".pt2": "a torch.export archive (it may unpickle objects)",
    ".pkl": "a pickle file",
    ".pickle": "a pickle file",
    ".joblib": "a joblib (pickle) file",
}


def check_model_file_trust(path: Path, *, trust_pickle: bool) -> None:
    """Refuse, before anything is loaded, a model file that is a program (TorchScript,
    ``torch.export``, pickle) unless the user trusts it (``--trust-model-code``)."""
    from miaudit.errors import UntrustedFileError, untrusted_program_message

    if trust_pickle:
        return
    kind = PROGRAM_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None and is_torchscript_file(path):
        kind = "a TorchScript archive"
    if kind is not None:
        raise UntrustedFileError(
            "target.model_file: " + untrusted_program_message(Path(path).name, kind)
        )


def check_code_trust(config: AuditConfig, *, trust_code: bool) -> None:
    """Refuse, before anything is imported or loaded, an audit file that names Python code
    (a ``python:`` recipe, an estimator by import path) unless the user trusts it; and a
    code file that does not exist."""
    from miaudit.errors import UntrustedFileError
    from miaudit.models.user_code import parse_code_reference

    named = []
    references = config.references.recipe if config.references is not None else None
    for where, recipe in (
        ("target.recipe", config.target.recipe),
        ("references.recipe", references),
    ):
        if recipe is None:
            continue
        if recipe.python is not None:
            parse_code_reference(recipe.python, base_dir=None, field=f"{where}.python")
            named.append((f"{where}.python", recipe.python))
        if recipe.sklearn is not None and recipe.sklearn.estimator not in SKLEARN_MODELS:
            named.append((f"{where}.sklearn.estimator", recipe.sklearn.estimator))
    sklearn = config.target.sklearn
    if sklearn is not None and sklearn.estimator not in SKLEARN_MODELS:
        named.append(("target.sklearn.estimator", sklearn.estimator))
    if named and not trust_code:
        field, code = named[0]
        raise UntrustedFileError(
            f"{field}: the audit file names Python code ({code}), which miaudit runs only "
            "when you say you trust it: pass --trust-code if you wrote it or trust its author "
            "(audit files travel; naming code in one is not enough)"
        )


def preflight(config: AuditConfig, *, trust_pickle: bool = False, trust_code: bool = False) -> list:
    """Raise :class:`~miaudit.errors.InvalidAuditInput` for any attack entry the audit
    cannot run, or a model file that is a program the user did not trust
    (``trust_pickle``), before the data set is loaded or a model is built; return the
    attacks (:class:`~miaudit.attacks.registry.AttackSpec`) as built."""
    check_code_trust(config, trust_code=trust_code)
    access = target_access(config)
    entries = config.attack_entries()
    specs = build_attacks(entries if entries is not None else default_attacks(access))
    has_recipe = (
        config.target.recipe is not None
        or config.target.sklearn is not None
        or (
            config.references is not None
            and (config.references.recipe is not None or config.references.predictions_file)
        )
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
    if config.references is not None and config.references.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise InvalidAuditInput(
                "references.executor: ray needs Ray installed: pip install 'miaudit[ray]'"
            )
    source = next(
        (k for k in ("model_file", "predictions_file", "http") if getattr(config.target, k)),
        None,
    )
    if source is not None:
        if split.indices_file is None:
            raise InvalidAuditInput(
                f"split: a target given by target.{source} was trained elsewhere, so "
                "miaudit cannot draw its members; give split.indices_file (an .npz with the "
                "'members' and 'nonmembers' record indices of that training run)"
            )
        if config.target.model_file is not None:
            check_readable_file(config.target.model_file, "target.model_file")
            check_model_file_trust(config.target.model_file, trust_pickle=trust_pickle)
    if split.indices_file is not None:
        check_split_file(split.indices_file)
    return specs
