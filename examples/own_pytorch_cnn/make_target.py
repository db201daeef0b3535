"""The owner's side: train the target with their own code on their own split, export it
to ONNX (a format that is data, not code) and record which records it trained on.

    python make_target.py            # writes target.onnx and split.npz here
"""

import sys
from pathlib import Path

import numpy as np
import torch
from train_cnn import train

from miaudit.data import load_dataset

HERE = Path(__file__).parent


def main(members: int = 300, nonmembers: int = 300, epochs: int = 30) -> None:
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    data = load_dataset("digits")  # the same arrays the audit reads
    x, y = data.x, data.y
    order = np.random.default_rng(0).permutation(len(x))
    split = {
        "members": order[:members],
        "nonmembers": order[members : members + nonmembers],
        "population": order[members + nonmembers :],  # never seen by the target
    }
    model = train(x[split["members"]], y[split["members"]], seed=0, epochs=epochs)
    torch.onnx.export(
        model,
        (torch.zeros(2, 64),),
        str(HERE / "target.onnx"),
        dynamo=False,
        input_names=["records"],
        output_names=["logits"],
        dynamic_axes={"records": {0: "n"}},
    )
    np.savez(HERE / "split.npz", **split)
    accuracy = (
        model(torch.as_tensor(x[split["nonmembers"]], dtype=torch.float32)).argmax(1).numpy()
        == y[split["nonmembers"]]
    ).mean()
    print(f"target.onnx: trained on {members} records, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
