"""Architectures, training, recipes and safe model files.

A recipe ("train one more model like the target on these records, with this seed") is what
reference- and shadow-model attacks need; the rest of this package is what a recipe uses.
"""

from miaudit.models.architectures import (
    ARCHITECTURES,
    ArchitectureSpec,
    ParamSpec,
    build_model,
    list_architectures,
    register_architecture,
    resolve_arch_params,
)
from miaudit.models.augment import flip_and_shift
from miaudit.models.python_recipe import PythonRecipe
from miaudit.models.recipes import (
    Recipe,
    SklearnRecipe,
    TorchRecipe,
    TrainedModel,
    check_indices,
)
from miaudit.models.serialization import (
    load_exported_program,
    load_sklearn_model,
    load_torch_model,
    load_torchscript_model,
    save_sklearn_model,
    save_torch_model,
)
from miaudit.models.training import (
    ProgressCallback,
    TrainingConfig,
    TrainResult,
    accuracy,
    predict_logits,
    resolve_device,
    train_model,
)

__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "ParamSpec",
    "ProgressCallback",
    "PythonRecipe",
    "Recipe",
    "SklearnRecipe",
    "TorchRecipe",
    "TrainResult",
    "TrainedModel",
    "TrainingConfig",
    "accuracy",
    "build_model",
    "check_indices",
    "flip_and_shift",
    "list_architectures",
    "load_exported_program",
    "load_sklearn_model",
    "load_torch_model",
    "load_torchscript_model",
    "predict_logits",
    "register_architecture",
    "resolve_arch_params",
    "resolve_device",
    "save_sklearn_model",
    "save_torch_model",
    "train_model",
]
