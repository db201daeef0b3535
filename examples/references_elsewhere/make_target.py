"""The owner's side: train the target on their split and save it as data (skops).

python make_target.py        # writes target.skops and split.npz
"""

from pathlib import Path

import numpy as np
import skops.io as sio
from owner_training import train

from miaudit.data import load_dataset

HERE = Path(__file__).parent

data = load_dataset("digits")
order = np.random.default_rng(1).permutation(data.n_records)
split = {"members": order[:400], "nonmembers": order[400:800], "population": order[800:]}
np.savez(HERE / "split.npz", **split)
sio.dump(train(data.x[split["members"]], data.y[split["members"]], seed=0), HERE / "target.skops")
print("wrote target.skops and split.npz")
