"""The demo audit: scikit-learn's embedded digits, an MLP that overfits, every metric attack.

It needs no file and no network, runs in well under a minute on two cores, and exercises
the whole flow, so a newcomer sees a real report before reading any documentation.
"""

from __future__ import annotations

from miaudit.config import AuditConfig, parse_config

DEMO_CONFIG: dict = {
    "dataset": {"name": "digits"},
    # 1,797 digits: 600 members the target trains on, 600 records it never sees, the rest
    # left to the attacker. Small training sets overfit, which is what an audit must catch.
    "split": {"members": 600, "nonmembers": 600, "seed": 0},
    "target": {
        "recipe": {
            "architecture": "mlp",
            "params": {"hidden": [256, 256]},
            # No weight decay and many epochs: the target memorises its members.
            "training": {
                "epochs": 150,
                "batch_size": 32,
                "optimizer": "adam",
                "lr": 0.001,
                "weight_decay": 0.0,
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
