"""The in-memory data set every part of miaudit passes around."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from miaudit.errors import raise_if_problems


@dataclass(frozen=True, eq=False)
class Dataset:
    """Records and labels in one canonical layout.

    Attributes
    ----------
    name : str
        Short name shown in reports (user-supplied names are escaped there).
    x : np.ndarray
        float32. Images are ``(n, channels, height, width)`` scaled to [0, 1]; tabular data
        is ``(n, n_features)``. One layout means models and signals never guess.
    y : np.ndarray
        ``(n,)`` int64 class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes (may exceed ``y.max() + 1`` when a class is absent).
    class_names : tuple of str
        One name per class; defaults to the class index as a string.
    source : str
        Where the records came from (file path or package), for the report.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    class_names: tuple[str, ...] = field(default=())
    source: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        x, y = self.x, self.y
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            problems.append(f"x must be a float32 array, got {getattr(x, 'dtype', type(x))}")
        if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
            problems.append(
                f"y must be a 1-d int64 array, got {getattr(y, 'dtype', type(y))} "
                f"with shape {getattr(y, 'shape', None)}"
            )
        if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and len(x) != len(y):
            problems.append(f"x has {len(x)} records but y has {len(y)}")
        if isinstance(x, np.ndarray) and x.ndim not in (2, 4):
            problems.append(f"x must be (n, features) or (n, c, h, w), got shape {x.shape}")
        if len(y) == 0:
            problems.append("the data set is empty")
        if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not np.isfinite(x).all():
            problems.append("x contains NaN or infinite values")
        if self.n_classes < 2:
            problems.append(f"n_classes must be at least 2, got {self.n_classes}")
        elif isinstance(y, np.ndarray) and len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            problems.append(
                f"labels must lie in [0, {self.n_classes}), found [{y.min()}, {y.max()}]"
            )
        if self.class_names and len(self.class_names) != self.n_classes:
            problems.append(
                f"class_names has {len(self.class_names)} names for {self.n_classes} classes"
            )
        raise_if_problems(f"Dataset {self.name!r}", problems)
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(c) for c in range(self.n_classes)))

    @property
    def n_records(self) -> int:
        return len(self.y)

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one record, e.g. ``(3, 32, 32)`` or ``(446,)``."""
        return tuple(self.x.shape[1:])

    def describe(self) -> dict:
        """JSON-ready summary without any record (raw records never go into reports)."""
        return {
            "name": self.name,
            "source": self.source,
            "n_records": self.n_records,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
        }
