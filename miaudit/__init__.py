"""miaudit: audit a trained model for membership inference leakage."""

__version__ = "0.1.0"
