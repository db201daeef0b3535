"""Train the references of a design written by 'miaudit plan-references', with the
owner's code, and save their answers for the audit.

    python train_elsewhere.py design.npz refs.npz
"""

import sys

import numpy as np
from owner_training import train

from miaudit.data import load_dataset

design_path, out_path = sys.argv[1], sys.argv[2]
design = np.load(design_path)
data = load_dataset("digits")
candidates, inclusion = design["candidates"], design["inclusion"]
asked = design["answer_records"]
answers = []
for k, seed in enumerate(design["seeds"]):
    records = candidates[inclusion[k]]  # the records reference k trains on
    model = train(data.x[records], data.y[records], seed=int(seed))
    answers.append(model.predict_proba(data.x[asked]))
    print(f"reference {k}: trained on {records.size} records")
np.savez(out_path, probabilities=np.stack(answers), record_ids=asked, inclusion=inclusion)
print(f"wrote {out_path}")
