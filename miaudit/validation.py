"""Type predicates shared by the parameter checks at miaudit's boundaries.

Booleans are integers to Python, but ``n_shadow=True`` or ``epochs=False`` is a mistake, not
a count: both predicates refuse them (and NumPy's booleans), and accept NumPy numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a boolean."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """A finite real number (Python or NumPy), not a boolean."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(float(value))
    )
