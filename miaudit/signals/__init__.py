"""Per-record signals, computed once per target and shared by all attacks."""

from miaudit.signals.table import (
    SIGNAL_NAMES,
    SignalTable,
    compute_signals,
    signals_from_labels,
    signals_from_logits,
    signals_from_proba,
)

__all__ = [
    "SIGNAL_NAMES",
    "SignalTable",
    "compute_signals",
    "signals_from_labels",
    "signals_from_logits",
    "signals_from_proba",
]
