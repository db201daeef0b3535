"""From a validated audit configuration to an :class:`AuditResult`: load the data, draw or
read the split, obtain the target (train it, or load it safely), run the audit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.audit import plan_audit, run_audit
from miaudit.config import (
    SKLEARN_MODELS,
    AuditConfig,
    RecipeSection,
    SklearnSection,
    TargetSection,
)
from miaudit.data import load_dataset
from miaudit.data.dataset import Dataset
from miaudit.data.split import AuditSplit, check_split_file, make_split
from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.results import AuditResult
from miaudit.preflight import preflight, target_access
from miaudit.references import ReferenceSetup
from miaudit.targets.adapters import AccessLevel, SklearnTarget, Target, TorchTarget, as_target
from miaudit.validation import check_readable_file, is_torchscript_file

EpochCallback = Callable[[int, int, float], None]
StageCallback = Callable[[str], None]


def build_split(config: AuditConfig, dataset: Dataset) -> AuditSplit:
    """The seeded split the file describes, or the indices it points to."""
    from miaudit.evaluation.settings import MIN_PER_SIDE

    section = config.split
    if section.indices_file is not None:
        split = load_split_file(section.indices_file, dataset.n_records)
    else:
        split = make_split(
            dataset.n_records,
            n_members=section.members,
            n_nonmembers=section.nonmembers,
            n_population=section.population,
            seed=section.seed,
            labels=dataset.y if section.stratify else None,
        )
    for name in ("members", "nonmembers"):
        if (n := getattr(split, name).size) < MIN_PER_SIDE:
            where = (
                f"split.{name}"
                if section.indices_file is None
                else f"split.indices_file {str(section.indices_file)!r}"
            )
            raise InvalidAuditInput(
                f"{where}: an audit needs at least {MIN_PER_SIDE} {name} (a held-out threshold "
                f"and the AUC's interval need {MIN_PER_SIDE} of each), got {n}"
            )
    return split


def load_split_file(path: Path, n_records: int) -> AuditSplit:
    """Read ``members``, ``nonmembers`` (and optional ``population``) indices from ``.npz``."""
    check_split_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            parts = {k: archive[k] for k in ("members", "nonmembers", "population") if k in keys}
    except (OSError, ValueError) as error:
        raise InvalidAuditInput(
            f"split.indices_file {str(path)!r}: not a readable .npz file ({error})"
        ) from None
    try:
        split = AuditSplit(
            parts["members"],
            parts["nonmembers"],
            parts.get("population", np.empty(0, np.int64)),
            seed=None,
        )
        split.check_within(n_records)
    except InvalidAuditInput as error:
        raise type(error)(f"split.indices_file {str(path)!r}: {error}") from None
    return split


def _access(section: TargetSection, default: AccessLevel) -> AccessLevel:
    return default if section.access == "auto" else AccessLevel.parse(section.access)


def _sklearn_estimator(section: SklearnSection, where: str, *, trust_code: bool = False):
    """The estimator a section names: a class of :data:`SKLEARN_MODELS` (a whitelist,
    imported without any flag), or any class by import path (``xgboost.XGBClassifier``)
    when the user trusts code (importing a module runs it)."""
    import importlib

    if section.estimator in SKLEARN_MODELS:
        module, name = SKLEARN_MODELS[section.estimator]
        cls = getattr(importlib.import_module(module), name)
    elif "." in section.estimator:
        from miaudit.models.user_code import CodeReference, load_function

        module, _, name = section.estimator.rpartition(".")
        cls = load_function(
            CodeReference(function=name, module=module),
            trust_code=trust_code,
            field=f"{where}.estimator",
        )
    else:
        raise InvalidAuditInput(
            f"{where}.estimator: {section.estimator!r} is not supported; choose one "
            f"of {', '.join(SKLEARN_MODELS)}, or give an import path such as "
            "xgboost.XGBClassifier (with --trust-code)"
        )
    params = dict(section.params)
    if section.estimator == "SVC":
        params.setdefault("probability", True)
    try:
        estimator = cls(**params)
        validate = getattr(estimator, "_validate_params", None)
        if callable(validate) and cls.__module__.startswith("sklearn."):
            validate()
    except (TypeError, ValueError) as error:
        raise InvalidAuditInput(f"{where}.params: {error}") from None
    for method in ("fit", "predict_proba", "get_params"):
        if not hasattr(estimator, method):
            raise InvalidAuditInput(
                f"{where}.estimator: {section.estimator} has no {method}(); give a "
                "scikit-learn-compatible classifier"
            )
    return estimator


def _sklearn_recipe(section: SklearnSection, where: str, *, trust_code: bool):
    from miaudit.models import SklearnRecipe

    return SklearnRecipe(
        _sklearn_estimator(section, where, trust_code=trust_code),
        extra_trusted_types=tuple(section.trusted_types),
    )


def _python_recipe(section: RecipeSection, where: str, *, trust_code: bool):
    """A :class:`~miaudit.models.PythonRecipe` for ``python: file.py:train``: the file is
    imported only with ``trust_code``; its signature and ``params`` are checked here."""
    from miaudit.models import PythonRecipe
    from miaudit.models.user_code import code_files, load_function, parse_code_reference

    reference = parse_code_reference(section.python, base_dir=None, field=f"{where}.python")
    fn = load_function(reference, trust_code=trust_code, field=f"{where}.python")
    code = code_files(reference.file) if reference.file is not None else None
    try:
        return PythonRecipe(
            fn,
            params=dict(section.params),
            output=section.output,
            architecture=section.architecture,
            arch_params=dict(section.architecture_params),
            code=code,
            name=f"{reference.file.name if reference.file else reference.module}:"
            f"{reference.function}",
        )
    except InvalidAuditInput as error:
        raise InvalidAuditInput(f"{where}: {error}") from None


def _torch_recipe(section: RecipeSection, where: str = "target.recipe"):
    from dataclasses import fields

    if section.kind != "torch":
        raise InvalidAuditInput(
            f"{where}: this command trains models with miaudit's trainer (architecture, "
            f"params, training); a {section.kind} recipe is for 'miaudit audit'"
        )
    from miaudit.models import TorchRecipe, TrainingConfig

    allowed = {f.name for f in fields(TrainingConfig)}
    unknown = sorted(set(section.training) - allowed)
    if unknown:
        raise InvalidAuditInput(
            f"{where}.training: unknown field(s) {unknown}; allowed: {sorted(allowed)}"
        )
    try:
        training = TrainingConfig(**section.training)
    except TypeError as error:
        raise InvalidAuditInput(f"{where}.training: {error}") from None
    except InvalidAuditInput as error:
        raise InvalidAuditInput(f"{where}.training: {error}") from None
    return TorchRecipe(
        architecture=section.architecture, arch_params=dict(section.params), training=training
    )


def build_recipe(section: RecipeSection, where: str, *, trust_code: bool = False):
    """The recipe a section describes: miaudit's trainer, the user's function, or an
    estimator (see :class:`~miaudit.config.RecipeSection`)."""
    if section.kind == "python":
        return _python_recipe(section, where, trust_code=trust_code)
    if section.kind == "sklearn":
        return _sklearn_recipe(section.sklearn, f"{where}.sklearn", trust_code=trust_code)
    return _torch_recipe(section, where)


def build_target_recipe(config: AuditConfig, dataset: Dataset, *, trust_code: bool = False):
    """The recipe the audit file trains its target with (checked against the data set),
    or None for a target loaded from a file. Builds, trains nothing."""
    section = config.target
    if section.recipe is not None:
        recipe = build_recipe(section.recipe, "target.recipe", trust_code=trust_code)
        recipe.validate(dataset)
        return recipe
    if section.sklearn is not None:
        return _sklearn_recipe(section.sklearn, "target.sklearn", trust_code=trust_code)
    return None


def build_target(
    config: AuditConfig,
    dataset: Dataset,
    split: AuditSplit,
    *,
    trust_pickle: bool = False,
    on_epoch: EpochCallback | None = None,
    recipe: Any = None,
    on_stage: StageCallback | None = None,
) -> tuple[Target, dict, Any]:
    """Train or load the target; return it, JSON-ready facts for the report, and the recipe
    that trained it (None for a loaded model: references then need their own recipe).
    ``recipe``: :func:`build_target_recipe`'s result when the caller has it already."""
    section = config.target
    description = section.description
    if recipe is None:
        recipe = build_target_recipe(config, dataset)
    if section.recipe is not None and section.recipe.kind == "python":
        trained, cached = _train_target(
            config, recipe, dataset, split, section.recipe.seed, None, on_stage
        )
        target = as_target(
            trained.model,
            n_classes=dataset.n_classes,
            access=None if section.access == "auto" else section.access,
            description=description or f"{recipe.name} (the user's training code)",
        )
        info = {
            "architecture": type(trained.model).__name__,
            "recipe": recipe.describe(),
            "training_seed": section.recipe.seed,
            "training_seconds": round(trained.seconds, 3),
            "origin": "trained by the user's training function, called by miaudit",
            "from_cache": cached,
        }
        return target, info, recipe
    if section.recipe is not None:
        trained, cached = _train_target(
            config, recipe, dataset, split, section.recipe.seed, on_epoch, on_stage
        )
        target = TorchTarget(
            trained.model,
            n_classes=dataset.n_classes,
            access=_access(section, AccessLevel.WHITE_BOX),
            description=description or f"{section.recipe.architecture} trained by miaudit",
        )
        info = {
            "architecture": section.recipe.architecture,
            "architecture_params": dict(section.recipe.params),
            "training": asdict(recipe.training),
            "training_seed": section.recipe.seed,
            "training_seconds": round(trained.seconds, 3),
            "origin": "trained by miaudit from the audit file's recipe",
            "from_cache": cached,
            **({"privacy": trained.privacy} if trained.privacy else {}),
        }
        return target, info, recipe
    if section.sklearn is not None:
        trained, cached = _train_target(
            config, recipe, dataset, split, section.sklearn.seed, None, on_stage
        )
        target = SklearnTarget(
            trained.model,
            n_classes=dataset.n_classes,
            access=_access(section, AccessLevel.PROBABILITIES),
            description=description or f"{section.sklearn.estimator}",
        )
        params = trained.model.get_params(deep=False)
        info = {
            "architecture": section.sklearn.estimator,
            # JSON-ready parameters only (an estimator-valued parameter is left out).
            "architecture_params": {
                k: v
                for k, v in params.items()
                if isinstance(v, (int, float, str, bool, type(None)))
            },
            "training_seconds": round(trained.seconds, 3),
            "origin": "trained by miaudit from the audit file's recipe",
            "from_cache": cached,
        }
        return target, info, recipe
    target, info = _load_target_file(section, dataset, split, trust_pickle=trust_pickle)
    return target, info, None


def _train_target(
    config: AuditConfig,
    recipe: Any,
    dataset: Dataset,
    split: AuditSplit,
    seed: int,
    on_epoch: EpochCallback | None,
    on_stage: StageCallback | None,
):
    """Train the target from its recipe, or load it from the model cache (the references'
    ``cache_dir``) when this recipe, data, member set and seed trained it before: a rerun
    after an interruption, or a second audit of the same target, never retrains it."""
    from miaudit.compute import ModelCache, train_or_load

    cache_dir = config.references.cache_dir if config.references is not None else None
    options = {"eval_indices": split.nonmembers}
    training = getattr(recipe, "training", None)
    if training is not None and training.early_stopping_patience:
        # Stopping on the audited non-members would pick the epoch that fits them best and
        # understate the leak; the attacker's population is held out from both.
        if split.population.size == 0:
            raise InvalidAuditInput(
                "target.recipe.training.early_stopping_patience: early stopping watches the "
                "loss on held-out records, taken from split.population, which is empty"
            )
        options["eval_indices"] = split.population
    if on_epoch is not None:
        options["progress"] = on_epoch
    trained, cached = train_or_load(
        ModelCache(cache_dir), recipe, dataset, split.members, seed=seed, **options
    )
    if cached and on_stage is not None:
        on_stage("target loaded from the model cache (trained by an earlier run)")
    return trained, cached


def _check_saved_for(path: Path, meta: dict, dataset: Dataset) -> None:
    """A saved network must fit the data set it audits: record shape and class count,
    both named, before anything is queried or trained."""
    problems = []
    saved_shape = meta.get("input_shape")
    if saved_shape is not None and tuple(saved_shape) != tuple(dataset.input_shape):
        problems.append(
            f"it was saved for records of shape {tuple(saved_shape)} but data set "
            f"{dataset.name!r} has records of shape {tuple(dataset.input_shape)}"
        )
    saved_classes = meta.get("n_classes")
    if saved_classes is not None and int(saved_classes) != dataset.n_classes:
        problems.append(
            f"it predicts {int(saved_classes)} classes but data set {dataset.name!r} has "
            f"{dataset.n_classes}"
        )
    if problems:
        raise InvalidAuditInput(f"target.model_file {str(path)!r}: " + "; ".join(problems))


def _load_target_file(
    section: TargetSection, dataset: Dataset, split: AuditSplit, *, trust_pickle: bool
) -> tuple[Target, dict]:
    """A target from a model file, a predictions file or a prediction API."""
    if section.predictions_file is not None:
        return _precomputed_target(section, dataset)
    if section.http is not None:
        from miaudit.targets.http import http_target, redact_url

        http = section.http
        target = http_target(
            http.url,
            n_classes=dataset.n_classes,
            output=http.output,
            description=section.description or "",
            **http.options(),
        )
        # Its usage (``api``) enters the report after the audit, when the queries are known.
        return target, {"origin": f"prediction API at {redact_url(http.url)}"}
    from miaudit.models import (
        load_exported_program,
        load_sklearn_model,
        load_torch_model,
        load_torchscript_model,
    )

    path = Path(section.model_file)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from miaudit.targets.onnx import OnnxTarget

        target = OnnxTarget(
            path,
            n_classes=dataset.n_classes,
            output=section.output,
            output_name=section.output_name,
            input_name=section.input_name,
            access=None if section.access == "auto" else section.access,
            description=section.description or "",
        )
        return target, {"architecture": "ONNX graph", "origin": f"loaded from {path.name}"}
    torchscript = is_torchscript_file(path)
    if torchscript or suffix == ".pt2":
        if torchscript:
            if section.access == "white_box":
                raise InvalidAuditInput(
                    f"target.access: {path.name!r} is TorchScript, whose modules give no "
                    "per-record gradients (torch.func); declare logits or less, or export "
                    "the model with torch.export (.pt2) for white-box attacks"
                )
            module = load_torchscript_model(path, trust_pickle=trust_pickle)
            kind = "TorchScript"
        else:
            module, kind = load_exported_program(path, trust_pickle=trust_pickle), "torch.export"
        target = TorchTarget(
            module,
            n_classes=dataset.n_classes,
            access=_access(section, AccessLevel.LOGITS if torchscript else AccessLevel.WHITE_BOX),
            description=section.description or f"{kind} model from {path.name}",
        )
        return target, {"architecture": f"{kind} program", "origin": f"loaded from {path.name}"}
    if suffix in (".pt", ".pth"):
        module, meta = load_torch_model(path)
        _check_saved_for(path, meta, dataset)
        n_classes = int(meta.get("n_classes", dataset.n_classes))
        target = TorchTarget(
            module,
            n_classes=n_classes,
            access=_access(section, AccessLevel.WHITE_BOX),
            description=section.description
            or f"PyTorch {meta.get('architecture')} from {path.name}",
        )
        return target, {
            "architecture": meta.get("architecture"),
            "origin": f"loaded from {path.name}",
        }
    if suffix in (".skops", ".pkl", ".pickle", ".joblib"):
        estimator = load_sklearn_model(path, trust_pickle=trust_pickle)
        target = SklearnTarget(
            estimator,
            n_classes=dataset.n_classes,
            access=_access(section, AccessLevel.PROBABILITIES),
            description=section.description
            or f"scikit-learn {type(estimator).__name__} from {path.name}",
        )
        return target, {
            "architecture": type(estimator).__name__,
            "origin": f"loaded from {path.name}",
        }
    raise InvalidAuditInput(
        f"target.model_file {str(path)!r}: unknown model format {suffix!r}; use .pt/.pth "
        "(PyTorch state_dict saved by miaudit.models.save_torch_model) or .skops "
        "(scikit-learn, or .pkl/.joblib with --trust-model-code)"
    )


def _precomputed_target(section: TargetSection, dataset: Dataset) -> tuple[Target, dict]:
    """Answers computed elsewhere, from ``.npz``: one array of logits, probabilities or
    labels, row ``i`` for record ``i`` (or for ``record_ids[i]`` when the file has them)."""
    from miaudit.preflight import predictions_kind
    from miaudit.targets.adapters import PrecomputedTarget

    path = Path(section.predictions_file)
    kind = predictions_kind(path, section.output)
    try:
        with np.load(path, allow_pickle=False) as archive:
            outputs = archive[kind]
            ids = archive["record_ids"] if "record_ids" in archive.files else None
    except ValueError as error:  # an object array: it would need pickle
        raise InvalidAuditInput(
            f"target.predictions_file {str(path)!r}: {kind} cannot be read without "
            f"unpickling ({error}); save plain numeric arrays"
        ) from None
    if ids is not None:
        _check_record_ids(path, ids, dataset.n_records)
    if ids is None and len(outputs) != dataset.n_records:
        raise InvalidAuditInput(
            f"target.predictions_file {str(path)!r}: {len(outputs)} rows of {kind} for a data "
            f"set of {dataset.n_records} records; give one row per record, or an array "
            "'record_ids' naming the record of each row"
        )
    try:
        target = PrecomputedTarget(
            outputs,
            output=kind,
            n_classes=dataset.n_classes,
            record_ids=ids,
            description=section.description or f"predictions from {path.name}",
        )
    except InvalidAuditInput as error:
        raise InvalidAuditInput(f"target.predictions_file {str(path)!r}: {error}") from None
    if section.access != "auto":
        declared = AccessLevel.parse(section.access)
        if declared > target.access:
            raise InvalidAuditInput(
                f"target.access: {kind} give {target.access.label} access at most, not "
                f"{declared.label}"
            )
        if declared == AccessLevel.LABEL_ONLY:
            from miaudit.targets.adapters import LabelOnlyTarget

            target = LabelOnlyTarget(target)
    return target, {"origin": f"precomputed {kind} from {path.name}"}


def _check_record_ids(path: Path, ids: np.ndarray, n_records: int) -> None:
    """``record_ids`` must name distinct records of the data set; ids that look 1-based
    (1 to n, no 0) are refused with that guess, since every row would otherwise be
    attributed to the wrong record."""
    where = f"target.predictions_file {str(path)!r}: record_ids"
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise InvalidAuditInput(f"{where} must be 1-d integers, got {ids.dtype} {ids.shape}")
    if ids.size == 0:
        raise InvalidAuditInput(f"{where} is empty")
    low, high = int(ids.min()), int(ids.max())
    if high == n_records and low >= 1 and 0 not in ids:
        raise InvalidAuditInput(
            f"{where} run from {low} to {high} for a data set of {n_records} records: they "
            "look 1-based; miaudit's record ids are 0-based (row i of the data set is id i), "
            "so subtract 1"
        )
    if low < 0 or high >= n_records:
        bad = int(np.count_nonzero((ids < 0) | (ids >= n_records)))
        raise InvalidAuditInput(
            f"{where}: {bad} ids outside [0, {n_records}) (smallest {low}, largest {high})"
        )
    if (repeated := ids.size - np.unique(ids).size) > 0:
        raise InvalidAuditInput(f"{where}: {repeated} ids appear more than once")


def build_reference_setup(
    config: AuditConfig, target_recipe: Any, *, trust_code: bool = False
) -> ReferenceSetup | None:
    """The references section, with the target's recipe as the default recipe."""
    section = config.references
    recipe = target_recipe
    if section is not None and section.predictions_file is not None:
        from miaudit.external_references import ExternalRecipe

        check_readable_file(section.predictions_file, "references.predictions_file")
        recipe = ExternalRecipe(str(section.predictions_file))
    elif section is not None and section.recipe is not None:
        recipe = build_recipe(section.recipe, "references.recipe", trust_code=trust_code)
    if recipe is None:
        return None  # run_audit names the attacks that needed one
    if section is None:
        return ReferenceSetup(recipe=recipe)
    return section.setup(recipe)


def _planning_setup(config: AuditConfig) -> ReferenceSetup | None:
    """The reference settings without a recipe: all :func:`plan_audit` needs to check the
    reference design (the recipe's only part there, whether it augments images, cannot
    make a check fail). None when the file gives no recipe at all."""
    from miaudit.config import ReferencesSection

    section = config.references or ReferencesSection()
    has_recipe = any(
        s is not None
        for s in (
            config.target.recipe,
            config.target.sklearn,
            section.recipe,
            section.predictions_file,
        )
    )
    if not has_recipe:
        return None
    if section.calibrate is True:  # candidates derive from the recipe, checked later
        section = section.model_copy(update={"calibrate": False})
    return section.setup(None)


def _prepare(config: AuditConfig, *, data_dir, trust_pickle: bool, trust_code: bool, notify):
    """Every check of an audit file, in order, up to the first model: the file, the data
    set and split, the plan (attacks, reference design), defenses, recipes. Trains
    nothing; returns ``(specs, dataset, split, plan, target_recipe, references)``."""
    # Attack entries, requirements and what may run: before the data loads.
    specs = preflight(config, trust_pickle=trust_pickle, trust_code=trust_code)
    notify(f"loading data set {config.dataset.name}")
    dataset = load_dataset(
        config.dataset.name, data_dir=data_dir or config.data_dir, **config.dataset.options
    )
    split = build_split(config, dataset)
    split.check_within(dataset.n_records)
    # The checks that need the data but no model (population sizes, query sets) run
    # before PyTorch is even imported, with the references' settings and no recipe yet.
    plan = plan_audit(
        target_access(config), dataset, split, config.attack_entries(), _planning_setup(config)
    )
    if config.target.defenses:
        from miaudit.targets.defenses import check_output_defenses

        check_output_defenses(
            [(d.name, d.params()) for d in config.target.defenses], dataset.n_classes
        )
    target_recipe = build_target_recipe(config, dataset, trust_code=trust_code)
    references = build_reference_setup(config, target_recipe, trust_code=trust_code)
    if references is not None:
        references.recipe.validate(dataset)
    return specs, dataset, split, plan, target_recipe, references


def plan_config(
    config: AuditConfig,
    *,
    data_dir: str | Path | None = None,
    trust_pickle: bool = False,
    trust_code: bool = False,
    on_stage: StageCallback | None = None,
):
    """What :func:`run_config` would do, without doing it (``miaudit audit --dry-run``):
    the checks, then an :class:`~miaudit.resources.AuditEstimate` of the models to train
    (and found in the cache), the queries, the memory and, from one timed epoch of
    miaudit's trainer, the training time."""
    from miaudit.resources import estimate_audit

    notify = on_stage or (lambda message: None)
    _, dataset, split, plan, target_recipe, references = _prepare(
        config, data_dir=data_dir, trust_pickle=trust_pickle, trust_code=trust_code, notify=notify
    )
    notify("estimating (one epoch of training is timed)")
    return estimate_audit(
        config, dataset, split, plan, target_recipe, references, calibrate_time=True
    )


def run_config(
    config: AuditConfig,
    *,
    data_dir: str | Path | None = None,
    trust_pickle: bool = False,
    trust_code: bool = False,
    on_stage: StageCallback | None = None,
    on_epoch: EpochCallback | None = None,
    on_reference: Callable[[int, int, dict], None] | None = None,
    on_step: Callable[[str, int, int, dict], None] | None = None,
) -> AuditResult:
    """Run the audit an :class:`AuditConfig` describes; nothing is written. The callbacks
    are those of :func:`~miaudit.audit.run_audit` (``on_epoch``: the target's training)."""
    started = time.perf_counter()
    notify = on_stage or (lambda message: None)
    specs, dataset, split, plan, target_recipe, references = _prepare(
        config, data_dir=data_dir, trust_pickle=trust_pickle, trust_code=trust_code, notify=notify
    )
    settings = config.evaluation
    # Memory the plan needs against what the machine has: refused now, not mid-training.
    from miaudit.resources import estimate_audit

    estimate_audit(config, dataset, split, plan, target_recipe, references, look_up_cache=False)
    if (
        config.target.recipe is not None
        and config.target.recipe.kind == "torch"
        and target_access(config) >= AccessLevel.WHITE_BOX
    ):
        # Layer names in attack entries are checked on an untrained copy of the network.
        from miaudit.audit import check_attacks_against_model
        from miaudit.models import build_model

        blank = build_model(
            target_recipe.architecture,
            input_shape=dataset.input_shape,
            n_classes=dataset.n_classes,
            **target_recipe.arch_params,
        )
        check_attacks_against_model(specs, blank)
    notify("preparing the target")
    target, info, _ = build_target(
        config,
        dataset,
        split,
        trust_pickle=trust_pickle,
        on_epoch=on_epoch,
        recipe=target_recipe,
        on_stage=on_stage,
    )
    if config.target.defenses:
        from miaudit.targets.defenses import output_defense

        for defense in config.target.defenses:
            target = output_defense(target, defense.name, **defense.params())
    result = run_audit(
        target,
        dataset,
        split,
        attacks=config.attack_entries(),
        settings=settings,
        target_info=info,
        references=references,
        progress=on_stage,
        on_reference=on_reference,
        on_step=on_step,
    )
    api = getattr(getattr(target, "fn", None), "describe", None)
    if callable(api):  # a prediction API: the queries the audit used, against its budget
        result.target["api"] = api()
    return replace(result, seconds=time.perf_counter() - started)


def plan_reference_design(
    config: AuditConfig, *, data_dir: str | Path | None = None, n_references: int | None = None
) -> dict:
    """The design of the references an audit file would train (``miaudit plan-references``):
    for each, the records it trains on and its seed, and the records whose answers the
    audit reads back (:func:`miaudit.external_references.reference_design`). Nothing is
    trained, loaded or imported: the file's model and code are not needed for this.

    ``n_references`` defaults to the most any of the file's attacks asks for.
    """
    from miaudit.external_references import reference_design
    from miaudit.validation import is_int

    # Only the attacks' parameters and the sizes are read: no model file is opened and no
    # code the file names is imported, so neither needs trusting here.
    specs = preflight(config, trust_pickle=True, trust_code=True)
    wanted = max((s.num_references or 0 for s in specs if s.requirements.references), default=0)
    n = wanted if n_references is None else n_references
    if not is_int(n) or n < 1:
        raise InvalidAuditInput(
            "plan-references: the file's attacks use no reference models; give "
            f"--references N (got {n!r})"
        )
    dataset = load_dataset(
        config.dataset.name, data_dir=data_dir or config.data_dir, **config.dataset.options
    )
    split = build_split(config, dataset)
    split.check_within(dataset.n_records)
    from miaudit.config import ReferencesSection

    section = config.references or ReferencesSection()
    setup = section.model_copy(update={"calibrate": False, "predictions_file": None}).setup(None)
    return reference_design(dataset, split, setup, int(n))
