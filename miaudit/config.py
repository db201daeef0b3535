"""The YAML audit file: its schema, and how it is read with errors that name the field.

Paths inside the file are relative to the file's own folder, so an audit directory can be
moved or shared as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from miaudit.errors import InvalidAuditInput
from miaudit.evaluation.settings import EvaluationSettings
from miaudit.signals.observations import MEMORY_MAP_ABOVE_MB
from miaudit.validation import MAX_COUNT, MAX_LR, check_readable_file

#: Multiples of the recipe's epoch count that ``references.calibrate: true`` tries.
CALIBRATION_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


#: scikit-learn classifiers a YAML file may name; a whitelist, so a config file can never
#: make us import or instantiate arbitrary code.
SKLEARN_MODELS = {
    "LogisticRegression": ("sklearn.linear_model", "LogisticRegression"),
    "RandomForestClassifier": ("sklearn.ensemble", "RandomForestClassifier"),
    "GradientBoostingClassifier": ("sklearn.ensemble", "GradientBoostingClassifier"),
    "MLPClassifier": ("sklearn.neural_network", "MLPClassifier"),
    "KNeighborsClassifier": ("sklearn.neighbors", "KNeighborsClassifier"),
    "DecisionTreeClassifier": ("sklearn.tree", "DecisionTreeClassifier"),
    "SVC": ("sklearn.svm", "SVC"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSection(_Section):
    """``name``: a registered data set (``miaudit datasets``) or a path to user data."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class SplitSection(_Section):
    """Either sizes of a seeded split, or a ``.npz`` of record indices (``members``,
    ``nonmembers`` and optionally ``population``) for a model trained elsewhere."""

    members: StrictInt | None = Field(default=None, gt=0)
    nonmembers: StrictInt | None = Field(default=None, gt=0)
    population: StrictInt | None = Field(default=None, ge=0)
    seed: StrictInt = 0
    stratify: StrictBool = True
    indices_file: Path | None = None

    @model_validator(mode="after")
    def _sizes_or_file(self) -> SplitSection:
        if self.indices_file is None and (self.members is None or self.nonmembers is None):
            raise ValueError("give members and nonmembers (sizes), or indices_file")
        if self.indices_file is not None and (self.members or self.nonmembers):
            raise ValueError("give either sizes or indices_file, not both")
        return self


class SklearnSection(_Section):
    """Train a scikit-learn-compatible classifier: a class name from SKLEARN_MODELS, or an
    import path (``xgboost.XGBClassifier``, ``lightgbm.LGBMClassifier``; importing it runs
    code, so only with ``--trust-code``). ``trusted_types``: types beyond skops' defaults
    its cached models may hold (XGBoost and LightGBM models need none: they are cached in
    their own formats)."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: StrictInt = 0
    trusted_types: list[str] = Field(default_factory=list)


class RecipeSection(_Section):
    """How to train a model: miaudit's trainer (``architecture``, ``params``,
    ``training``), the user's own function (``python: file.py:train`` or
    ``package.module:train``, with ``params`` its keyword arguments; ``architecture`` then
    names the registered class it returns, so that its weights can be cached), or, for the
    references, a scikit-learn-compatible estimator (``sklearn: {estimator, params}``)."""

    architecture: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    seed: StrictInt = 0
    python: str | None = None
    #: What a callable returned by the user's function answers: auto, logits, probabilities.
    output: Literal["auto", "logits", "probabilities"] = "auto"
    architecture_params: dict[str, Any] = Field(default_factory=dict)
    sklearn: SklearnSection | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RecipeSection:
        if self.python is not None:
            if self.sklearn is not None:
                raise ValueError("give python or sklearn, not both")
            if self.training:
                raise ValueError(
                    "training is for miaudit's trainer; the user's function takes its "
                    "settings as params"
                )
            return self
        if self.output != "auto" or self.architecture_params:
            raise ValueError("output and architecture_params go with python")
        given = [k for k in ("architecture", "sklearn") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of architecture (miaudit's trainer), python (your "
                f"training function) or sklearn (an estimator); got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        """``python``, ``sklearn`` or ``torch``."""
        if self.python is not None:
            return "python"
        return "sklearn" if self.sklearn is not None else "torch"


class OutputDefense(_Section):
    """One output defense: ``top_k`` (``k``), ``rounding`` (``decimals``), ``temperature``
    (``temperature``), ``noise`` (``scale``, ``seed``) or ``label_only``."""

    name: Literal["top_k", "rounding", "temperature", "noise", "label_only"]
    k: StrictInt | None = Field(default=None, ge=1)
    decimals: StrictInt | None = Field(default=None, ge=0, le=8)
    temperature: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    scale: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    seed: StrictInt | None = None

    def params(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if k != "name" and v is not None}


#: Model files a target can be loaded from, by suffix: miaudit's PyTorch files (or
#: TorchScript archives, detected), TorchScript, ONNX, torch.export programs and
#: scikit-learn files (``.pt2``, ``.pkl`` and kin only with ``--trust-model-code``).
MODEL_FILE_SUFFIXES = (
    ".pt",
    ".pth",
    ".ts",
    ".torchscript",
    ".onnx",
    ".pt2",
    ".skops",
    ".pkl",
    ".pickle",
    ".joblib",
)


class HttpSection(_Section):
    """A prediction API (see :class:`miaudit.targets.http.HttpPredictor`): records are
    POSTed as ``{request_key: [...]}``, answers read from ``{response_key: [...]}``."""

    url: str
    output: Literal["probabilities", "logits", "labels"] = "probabilities"
    batch_size: StrictInt = Field(default=256, ge=1)
    max_requests_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    retries: StrictInt = Field(default=3, ge=0)
    timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    query_budget: StrictInt | None = Field(default=None, ge=1)
    request_key: str = Field(default="instances", min_length=1)
    response_key: str = Field(default="predictions", min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    memoize: StrictBool = True
    #: Most seconds one request may take in all, and most bytes read from one answer.
    deadline_s: float = Field(default=90.0, gt=0, allow_inf_nan=False)
    max_response_bytes: StrictInt = Field(default=64 << 20, ge=1)

    def options(self) -> dict:
        """Keyword arguments of :class:`~miaudit.targets.http.HttpPredictor`."""
        return self.model_dump(exclude={"url", "output"})


#: Where a target can come from; a target section gives exactly one.
TARGET_SOURCES = ("recipe", "sklearn", "model_file", "predictions_file", "http")


class TargetSection(_Section):
    """Exactly one of ``recipe``, ``sklearn`` (train here), ``model_file`` (load),
    ``predictions_file`` (an ``.npz`` of answers aligned with the data set's records) or
    ``http`` (a prediction API).

    ``output`` says what an ONNX model or a predictions file holds (``auto``: detected;
    ``logits``, ``probabilities`` or ``labels``); ``output_name`` / ``input_name`` pick an
    ONNX graph's output and input when it has several."""

    recipe: RecipeSection | None = None
    sklearn: SklearnSection | None = None
    model_file: Path | None = None
    predictions_file: Path | None = None
    http: HttpSection | None = None
    access: Literal["auto", "white_box", "logits", "probabilities", "label_only"] = "auto"
    output: Literal["auto", "logits", "probabilities", "labels"] = "auto"
    output_name: str | None = None
    input_name: str | None = None
    description: str | None = None
    #: Output defenses wrapped around the model's answers, innermost first:
    #: ``[{name: top_k, k: 3}, {name: rounding, decimals: 2}]`` (see miaudit.targets.defenses).
    defenses: list[OutputDefense] = Field(default_factory=list)

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSection:
        given = [k for k in TARGET_SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(TARGET_SOURCES)} (got {given or 'none'})"
            )
        suffix = self.model_file.suffix.lower() if self.model_file is not None else None
        if suffix is not None and suffix not in MODEL_FILE_SUFFIXES:
            raise ValueError(
                f"model_file {self.model_file.name!r}: unknown model format {suffix!r}; use "
                ".pt/.pth (PyTorch, saved by miaudit.models.save_torch_model, or TorchScript), "
                ".onnx (ONNX), .skops (scikit-learn), or with --trust-model-code .ts "
                "(TorchScript), .pt2 (torch.export) or .pkl/.pickle/.joblib"
            )
        if self.predictions_file is not None and self.predictions_file.suffix.lower() != ".npz":
            raise ValueError(
                f"predictions_file {self.predictions_file.name!r} must be an .npz file with "
                "an array 'logits', 'probabilities' or 'labels' (and optionally 'record_ids')"
            )
        onnx = suffix == ".onnx"
        if self.output == "labels" and onnx:
            raise ValueError(
                "output: labels is for predictions files; an ONNX model gives "
                "logits or probabilities (declare access: label_only instead)"
            )
        if self.output != "auto" and not (onnx or self.predictions_file is not None):
            raise ValueError(
                "output is for ONNX models and predictions files (an http "
                "target says it in http.output)"
            )
        if (self.output_name or self.input_name) and not onnx:
            raise ValueError("output_name and input_name are for ONNX models")
        return self


class AttackEntry(BaseModel):
    """``{name: rmia, num_references: 4, gamma: 2}``: parameters beyond ``name`` go to the
    attack and are checked by :func:`miaudit.attacks.registry.build_attack`."""

    model_config = ConfigDict(extra="allow")
    name: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **(self.model_extra or {})}


class CalibrateSection(_Section):
    """``calibrate: {param: lr, values: [0.05, 0.1, 0.2]}``: try each value of one numeric
    recipe setting and keep the one whose references match the target best."""

    param: str = Field(min_length=1)
    values: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> CalibrateSection:
        if any(not v > 0 or v != v or v == float("inf") for v in self.values):
            raise ValueError(f"values must be positive numbers, got {self.values}")
        return self


class ReferencesSection(_Section):
    """How reference models are trained for LiRA, RMIA and Attack-R.

    ``recipe`` defaults to the target's own when miaudit trains the target; a target loaded
    from a file needs one here. ``queries``: ``auto`` (flips for images when the recipe
    augments, none otherwise), ``none``, ``flips`` or ``flips_and_shifts``. ``cache_dir``:
    where trained models are kept (default ``$MIAUDIT_CACHE``, else ``~/.cache/miaudit``).
    ``population_size``: population records RMIA compares against (default all, at most
    10,000). ``train_size``: records each reference trains on (default: the target's
    members). ``calibrate``: ``true`` (epoch counts of 1/4 to 2x the recipe's), a list
    of epoch counts, or ``{param: NAME, values: [...]}`` for any numeric setting of the
    recipe (a keyword of the user's training function included), to pick the value whose
    references best match the target (see
    :func:`miaudit.references.calibrate_epochs`). ``reseed``: retrain each reference outside
    the recipe-match tolerance with a fresh seed on the same records, up to this many times.
    """

    recipe: RecipeSection | None = None
    queries: Literal["auto", "none", "flips", "flips_and_shifts"] = "auto"
    cache_dir: Path | None = None
    seed: StrictInt = 0
    population_size: StrictInt | None = Field(default=None, gt=0)
    train_size: StrictInt | None = Field(default=None, gt=0)
    calibrate: StrictBool | list[StrictInt] | CalibrateSection = False
    #: For the user's own training code: train one reference twice with one seed and
    #: report whether the answers agree.
    check_determinism: StrictBool = True
    reseed: StrictInt = Field(default=0, ge=0)
    #: Where references train: inprocess, process (``workers`` local processes) or ray
    #: (``ray_address``: auto or a URL to join a cluster; none starts a local instance).
    executor: Literal["inprocess", "process", "ray"] = "inprocess"
    workers: StrictInt = Field(default=2, ge=1)
    ray_address: str | None = None
    threads_per_worker: StrictInt | None = Field(default=None, ge=1)
    #: MiB of reference answers above which they are mapped from the cache's disk; null
    #: never maps.
    memory_map_above_mb: float | None = Field(
        default=MEMORY_MAP_ABOVE_MB, ge=0, allow_inf_nan=False
    )
    #: Answers of references trained elsewhere (``miaudit plan-references`` writes their
    #: design; see miaudit.external_references): no reference is trained here.
    predictions_file: Path | None = None

    @model_validator(mode="after")
    def _recipe_or_answers(self) -> ReferencesSection:
        if self.predictions_file is not None and self.recipe is not None:
            raise ValueError("give recipe (train references here) or predictions_file, not both")
        if self.predictions_file is not None and self.calibrate not in (False, []):
            raise ValueError("calibrate trains references here; it cannot use predictions_file")
        return self

    def setup(self, recipe: Any):
        """The :class:`~miaudit.references.ReferenceSetup` this section describes, with
        ``recipe`` (this section's, or the target's) as the references' recipe."""
        from miaudit.references import ReferenceSetup

        return ReferenceSetup(
            recipe=recipe,
            queries=self.queries,
            cache_dir=self.cache_dir,
            seed=self.seed,
            population_size=self.population_size,
            train_size=self.train_size,
            calibrate=tuple(self.calibrate_values(recipe)),
            calibrate_param=self.calibrate_param,
            check_determinism=self.check_determinism,
            reseed=self.reseed,
            predictions_file=self.predictions_file,
            executor=self.executor,
            workers=self.workers,
            ray_address=self.ray_address,
            threads_per_worker=self.threads_per_worker,
            memory_map_above_mb=self.memory_map_above_mb,
        )

    @property
    def calibrate_param(self) -> str:
        """The recipe setting ``calibrate`` varies (epochs unless it says otherwise)."""
        return self.calibrate.param if isinstance(self.calibrate, CalibrateSection) else "epochs"

    def calibrate_values(self, recipe: Any) -> list[float]:
        """The candidate values ``calibrate`` stands for, given the references' recipe:
        ``true`` is 1/4 to 2x the recipe's epochs (its training's, or its ``epochs``
        parameter for the user's function)."""
        if isinstance(self.calibrate, CalibrateSection):
            return list(self.calibrate.values)
        if self.calibrate is False or self.calibrate == []:
            return []
        if self.calibrate is True:
            epochs = getattr(getattr(recipe, "training", None), "epochs", None)
            if epochs is None:
                epochs = (getattr(recipe, "params", None) or {}).get("epochs")
            if not isinstance(epochs, int) or isinstance(epochs, bool):
                raise InvalidAuditInput(
                    "references.calibrate: true picks an epoch count, so it needs miaudit's "
                    "trainer or a training function with an 'epochs' param; or give "
                    "{param: NAME, values: [...]}"
                )
            return sorted({max(1, round(epochs * f)) for f in CALIBRATION_FACTORS})
        return list(self.calibrate)


class SweepSetting(_Section):
    """One defense setting of ``miaudit sweep``: changes to the target's recipe (training
    options such as ``weight_decay``, ``label_smoothing``, ``mixup_alpha``,
    ``dp_target_epsilon``; architecture ``params`` such as ``dropout``) and/or output
    ``defenses``. References and shadow models train with the same recipe."""

    label: str = Field(min_length=1)
    training: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    defenses: list[OutputDefense] = Field(default_factory=list)


class CanaryAuditSection(_Section):
    """``miaudit sweep``'s canary audit of each setting's training (miaudit.dp_audit):
    ``canaries`` mislabelled or out-of-distribution records made from the population,
    audited in one run (Steinke et al.) or in ``n_models`` runs (``classic``)."""

    canaries: StrictInt = Field(default=500, ge=2)
    kind: Literal["mislabelled", "ood"] = "mislabelled"
    method: Literal["one_run", "classic"] = "one_run"
    n_models: StrictInt = Field(default=16, ge=4)
    confidence: float = Field(default=0.95, ge=0.5, lt=1.0)
    seed: StrictInt = 0


class UnlearningMethod(_Section):
    """One unlearning method of ``miaudit unlearn``: ``retrain``; ``sisa`` (``shards``,
    ``slices``, ``aggregate``); ``finetune`` (``epochs``); ``gradient_ascent`` (``lr``,
    ``steps``)."""

    name: Literal["retrain", "sisa", "finetune", "gradient_ascent"]
    shards: StrictInt = Field(default=5, ge=1, le=MAX_COUNT)
    slices: StrictInt = Field(default=1, ge=1, le=MAX_COUNT)
    aggregate: Literal["mean", "vote"] = "mean"
    epochs: StrictInt = Field(default=2, ge=1, le=MAX_COUNT)
    lr: float = Field(default=1e-3, gt=0, le=MAX_LR, allow_inf_nan=False)
    steps: StrictInt = Field(default=5, ge=1, le=MAX_COUNT)


class UnlearningSection(_Section):
    """What ``miaudit unlearn`` deletes and how: ``fractions`` of the members (each drawn
    from the original training set), or one ``klass``; the ``methods`` to compare; the
    ``attacks`` (metric attacks) that check the forgetting."""

    fractions: list[float] = Field(default_factory=lambda: [0.05, 0.10])
    klass: StrictInt | None = None
    #: A given list of records to delete (dataset indices, all of them members).
    indices: list[StrictInt] | None = None
    methods: list[UnlearningMethod] = Field(
        default_factory=lambda: [UnlearningMethod(name="retrain"), UnlearningMethod(name="sisa")],
        min_length=1,
    )
    attacks: list[Literal["loss", "confidence", "entropy", "modified_entropy", "gap"]] = Field(
        default_factory=lambda: ["loss", "gap"]
    )
    #: Reference models for U-LiRA (trained, then unlearned by each method); 0: no U-LiRA.
    #: Used for retrain, finetune and gradient_ascent (a SISA per reference is not built).
    ulira_references: StrictInt = Field(default=0, ge=0, le=10_000)
    seed: StrictInt = 0

    @model_validator(mode="after")
    def _fractions(self) -> UnlearningSection:
        if any(not 0 < f < 1 for f in self.fractions):
            raise ValueError(f"fractions must lie in (0, 1), got {self.fractions}")
        if not self.fractions and self.klass is None and self.indices is None:
            raise ValueError("give fractions, klass or indices")
        if self.ulira_references % 2:
            raise ValueError("ulira_references must be even (references come in pairs)")
        return self


class TrackingSection(_Section):
    """``tracking: mlflow`` (MLflow's default URI) or ``{kind: mlflow, uri: ...,
    experiment: ...}``: log the audit as an MLflow run (see :mod:`miaudit.tracking`)."""

    kind: Literal["mlflow"] = "mlflow"
    uri: str | None = None
    experiment: str = Field(default="miaudit", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data


class _DataFile(_Section):
    """What every file starts with: the data set (``dataset: name`` is short for
    ``dataset: {name: name}``) and where to find it."""

    dataset: DatasetSection
    data_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _dataset_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("dataset"), str):
            data = {**data, "dataset": {"name": data["dataset"]}}
        return data


class AuditConfig(_DataFile):
    """A whole audit. See README.md for an example."""

    split: SplitSection
    target: TargetSection
    attacks: list[str | AttackEntry] | None = None
    references: ReferencesSection | None = None
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    output: Path | None = None
    #: Defense settings for ``miaudit sweep`` (ignored by ``miaudit audit``).
    sweep: list[SweepSetting] | None = None
    #: A canary audit of every setting's training, next to the accountant's ε (sweep only).
    canary_audit: CanaryAuditSection | None = None
    #: The deletion study of ``miaudit unlearn`` (ignored by the other commands).
    unlearning: UnlearningSection | None = None
    #: Log the audit to an experiment tracker (``miaudit audit`` only).
    tracking: TrackingSection | None = None

    def attack_entries(self) -> list[str | dict[str, Any]] | None:
        """Attack names and ``{name, **params}`` mappings, in file order."""
        if self.attacks is None:
            return None
        return [a if isinstance(a, str) else a.as_dict() for a in self.attacks]


class ExperimentConfig(_DataFile):
    """A self-audit (``miaudit experiment``): ``n_targets`` models of one recipe, each
    audited in turn with ``n_references`` others as references (see
    :func:`miaudit.experiment.self_audit`). ``records``: a seeded subset of the data set
    (default all of it); every model trains on a random half of those records."""

    records: StrictInt | None = Field(default=None, ge=20)
    recipe: RecipeSection
    attacks: list[str | AttackEntry] | None = None
    n_references: StrictInt = Field(ge=1, le=10_000)
    n_targets: StrictInt = Field(default=1, ge=1, le=10_000)
    queries: Literal["auto", "none", "flips", "flips_and_shifts"] = "auto"
    cache_dir: Path | None = None
    population_size: StrictInt | None = Field(default=None, gt=0)
    seed: StrictInt = 0
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    output: Path | None = None
    #: Where the models train, as for ``references.executor``.
    executor: Literal["inprocess", "process", "ray"] = "inprocess"
    workers: StrictInt = Field(default=2, ge=1)
    ray_address: str | None = None

    def attack_entries(self) -> list[str | dict[str, Any]]:
        """The attacks, by default the reference attacks of the papers and the loss attack."""
        if self.attacks is None:
            return ["lira", "rmia", "attack_r", "loss"]
        return [a if isinstance(a, str) else a.as_dict() for a in self.attacks]


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        shown = repr(got)
        shown = shown if len(shown) <= 200 else shown[:200] + " …"
        suffix = "" if isinstance(got, (dict, list)) or got is None else f" (got {shown})"
        lines.append(f"{where}: {message}{suffix}")
    return f"{source}: " + "; ".join(lines)


def _validated(schema: type[_Section], data: Any, source: str, keys: str) -> Any:
    """``data`` validated by ``schema``; a message naming each bad field otherwise."""
    if not isinstance(data, dict):
        raise InvalidAuditInput(f"{source}: {keys} (got {type(data).__name__})")
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise InvalidAuditInput(capped(_format_validation_error(error, source))) from None


def _relative_to(base: Path):
    """A path of the file as written: absolute as is, relative to the file's folder."""
    return lambda p: p if p is None or p.is_absolute() else (base / p)


def parse_config(data: Any, *, source: str = "config", base_dir: Path | None = None) -> AuditConfig:
    """Validate a parsed YAML document; relative paths resolve against ``base_dir``."""
    config = _validated(
        AuditConfig,
        data,
        source,
        "an audit file must be a mapping with keys dataset, split, target, ...",
    )
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


def parse_experiment_config(
    data: Any, *, source: str = "config", base_dir: Path | None = None
) -> ExperimentConfig:
    """Validate a self-audit file; relative paths resolve against ``base_dir``."""
    config = _validated(
        ExperimentConfig,
        data,
        source,
        "an experiment file must be a mapping with keys dataset, recipe, n_references, ...",
    )
    if base_dir is None:
        return config
    fix = _relative_to(base_dir)
    return config.model_copy(
        update={
            "cache_dir": fix(config.cache_dir),
            "data_dir": fix(config.data_dir),
            "output": fix(config.output),
        }
    )


#: Longest error message a malformed file produces: a hostile file must not flood the
#: terminal (an alias bomb of 469 bytes used to print 8 MB).
MAX_MESSAGE = 2000


class _StrictLoader(yaml.SafeLoader):
    """YAML as an audit file needs it: safe types only, no aliases (``&a`` / ``*a``, whose
    expansion a small file can make exponential), and no duplicate keys (the second
    ``dataset:`` would silently win)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in an audit file", mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def capped(message: str) -> str:
    """``message``, cut to :data:`MAX_MESSAGE` characters with a count of the rest."""
    if len(message) <= MAX_MESSAGE:
        return message
    return message[:MAX_MESSAGE] + f" … ({len(message) - MAX_MESSAGE} more characters)"


def load_config(path: str | Path) -> AuditConfig:
    """Read and validate a YAML audit file."""
    path = Path(path)
    return parse_config(read_yaml(path), source=str(path), base_dir=path.parent)


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML self-audit file (``miaudit experiment``)."""
    path = Path(path)
    return parse_experiment_config(read_yaml(path), source=str(path), base_dir=path.parent)


def read_yaml(path: Path) -> Any:
    """A YAML file parsed with the strict loader, errors naming line and column."""
    check_readable_file(path, "audit file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidAuditInput(capped(f"{path}: not valid YAML{where}: {problem}")) from None
    except UnicodeDecodeError:
        raise InvalidAuditInput(f"{path}: not a UTF-8 text file") from None
    return data


def _code_relative_to(base: Path, recipe: RecipeSection | None) -> RecipeSection | None:
    """A recipe whose ``python: file.py:function`` names its file relative to ``base``."""
    if recipe is None or recipe.python is None:
        return recipe
    where, _, function = recipe.python.rpartition(":")
    if not (where.endswith(".py") or "/" in where) or Path(where).is_absolute():
        return recipe
    return recipe.model_copy(update={"python": f"{base / where}:{function}"})


def _resolve_paths(config: AuditConfig, base: Path) -> AuditConfig:
    fix = _relative_to(base)

    target = config.target.model_copy(
        update={
            "model_file": fix(config.target.model_file),
            "predictions_file": fix(config.target.predictions_file),
            "recipe": _code_relative_to(base, config.target.recipe),
        }
    )
    references = config.references
    if references is not None:
        references = references.model_copy(
            update={
                "cache_dir": fix(references.cache_dir),
                "predictions_file": fix(references.predictions_file),
                "recipe": _code_relative_to(base, references.recipe),
            }
        )
    split = config.split.model_copy(update={"indices_file": fix(config.split.indices_file)})
    dataset = config.dataset
    name_path = base / dataset.name
    if not dataset.name.isidentifier() and name_path.exists():
        dataset = dataset.model_copy(update={"name": str(name_path)})
    # Options naming files (``y_path`` for a .npy pair) are paths too.
    options = {
        key: str(fix(Path(value))) if key.endswith("_path") and isinstance(value, str) else value
        for key, value in dataset.options.items()
    }
    dataset = dataset.model_copy(update={"options": options})
    return config.model_copy(
        update={
            "target": target,
            "split": split,
            "dataset": dataset,
            "data_dir": fix(config.data_dir),
            "references": references,
            "output": fix(config.output),
        }
    )
