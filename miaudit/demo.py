"""The demo audit: scikit-learn's embedded digits, an MLP that overfits, every metric attack.

It needs no file and no network, runs in well under a minute on two cores, and exercises
the whole flow, so a newcomer sees a real report before reading any documentation.
"""

from __future__ import annotations

from miaudit.config import AuditConfig, parse_config

DEMO_CONFIG: dict = {
    "dataset": {"name": "digits"},
    # 1,797 digits: the target trains on only 100 of them, 600 records it never sees are
    # audited beside them, the rest is left to the attacker. A model that fits 100 records
    # perfectly for hundreds of epochs memorises them: what an audit must catch.
    "split": {"members": 100, "nonmembers": 600, "seed": 0},
    "target": {
        "recipe": {
            "architecture": "mlp",
            "params": {"hidden": [256, 256]},
            # No weight decay, a constant learning rate and many epochs: 100% train
            # accuracy, about 90% test accuracy, and members fitted far more tightly.
            "training": {
                "epochs": 300,
                "batch_size": 16,
                "optimizer": "adam",
                "lr": 0.001,
                "weight_decay": 0.0,
                "schedule": "constant",
            },
            "seed": 0,
        },
        "description": "MLP 64-256-256-10 on scikit-learn digits (demo)",
    },
    "evaluation": {"seed": 0},
}


def demo_config() -> AuditConfig:
    """The demo's audit configuration (the same schema as a YAML audit file)."""
    return parse_config(DEMO_CONFIG, source="demo")
